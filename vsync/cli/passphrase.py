"""Where an encrypted remote's passphrase comes from: ``--password-file FILE``,
else ``VSYNC_PASSWORD``, else a prompt on the terminal."""

from __future__ import annotations

import getpass
import os
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
