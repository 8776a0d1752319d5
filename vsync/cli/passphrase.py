"""Where passphrases come from.

An encrypted remote's: ``--password-file FILE``, else ``VSYNC_PASSWORD``, else a
prompt on the terminal.

An encrypted SSH private key's (:func:`key_passphrase_source`), as OpenSSH asks:
on the terminal (``/dev/tty``, not echoed), or from the program ``SSH_ASKPASS``
names (its one argument the prompt, the passphrase its first line of output)
when ``SSH_ASKPASS_REQUIRE`` is ``force`` or ``prefer``, or when there is no
terminal (``never``: only the terminal). Each key is asked for once per run; a
wrong passphrase is asked again, at most three times.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from vsync.errors import UsageError


def first_line(password_file: str) -> str:
    """The passphrase in a password file: its first line."""
    try:
        text = Path(password_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the password file {password_file}: {exc}") from None
    return text.splitlines()[0] if text else ""


def passphrase_source(password_file: str | None, confirm: bool = False) -> Callable[[], str]:
    """A function giving the passphrase, asked only when an encrypted remote needs it."""

    def get() -> str:
        if password_file is not None:
            return first_line(password_file)
        env = os.environ.get("VSYNC_PASSWORD")
        if env is not None:
            return env
        if not sys.stdin.isatty():
            raise UsageError(
                "an encrypted remote needs a passphrase: use --password-file FILE, "
                "set VSYNC_PASSWORD, or run on a terminal"
            )
        first = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase again: ") != first:
            raise UsageError("the two passphrases differ; nothing was made")
        return first

    return get


def new_passphrase_source(password_file: str | None) -> Callable[[], str]:
    """The new passphrase of ``vsync key add|change``: ``--new-password-file FILE``,
    else asked twice on the terminal."""

    def get() -> str:
        if password_file is not None:
            return first_line(password_file)
        if not sys.stdin.isatty():
            raise UsageError(
                "the new passphrase is asked on a terminal; use --new-password-file FILE"
            )
        first = getpass.getpass("New passphrase: ")
        if getpass.getpass("New passphrase again: ") != first:
            raise UsageError("the two new passphrases differ; nothing was changed")
        return first

    return get


ASKPASS_TIMEOUT = 300.0  # seconds an askpass program may take (a person types there)


def key_passphrase_source() -> Callable[[str, int], str | None]:
    """``ask(path, attempt)``: the passphrase of the SSH key ``path`` (None: skip it)."""
    given: dict[str, str] = {}

    def ask(path: str, attempt: int) -> str | None:
        if attempt == 0 and path in given:
            return given[path]
        prompt = f"Enter passphrase for key '{path}': "
        if attempt:
            prompt = "Wrong passphrase. " + prompt
        phrase = _ask(prompt)
        if phrase is not None:
            given[path] = phrase
        return phrase

    return ask


def _ask(prompt: str) -> str | None:
    askpass = os.environ.get("SSH_ASKPASS", "")
    require = os.environ.get("SSH_ASKPASS_REQUIRE", "")
    if askpass and require in ("force", "prefer"):
        return _run_askpass(askpass, prompt)
    phrase = _from_terminal(prompt)
    if phrase is None and askpass and require != "never":
        return _run_askpass(askpass, prompt)
    return phrase


def _from_terminal(prompt: str) -> str | None:
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(tty)
    with contextlib.suppress(EOFError, OSError):
        return getpass.getpass(prompt)
    return None


def _run_askpass(program: str, prompt: str) -> str | None:
    try:
        done = subprocess.run(
            [program, prompt],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=ASKPASS_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None  # cancelled
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    return lines[0] if lines else ""
