"""``vsync key add|remove|change|list`` on encrypted remotes (docs/format.md,
"Changing keys"): real vsync subprocesses, a path remote and the real sshd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import RemoteKind, run_vsync, snapshot_tree
from test_crypt_remote import PASS, make_remote, make_work, one_error_line, vs

from vsync.errors import UsageError
from vsync.sync.crypt.keyring import add_key, remove_key
from vsync.sync.crypt.remote import open_key
from vsync.sync.objstore.folder import FolderStore

FIRST = PASS["VSYNC_PASSWORD"]
SECOND = "a second passphrase, for the laptop"
THIRD = "the third one"


def pw_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"pw-{abs(hash(text))}"
    path.write_text(text + "\n")
    return str(path)


def key_ids(remote: str, cwd: Path, env: dict[str, str] | None = None, *extra: str) -> list[str]:
    out = vs("key", "list", remote, *extra, cwd=cwd, env=env).stdout
    return [line.split()[0] for line in out.splitlines()]


def clone_with(tmp_path: Path, remote: Path, passphrase: str, name: str) -> Path:
    vs("clone", remote, name, cwd=tmp_path, env={"VSYNC_PASSWORD": passphrase})
    return tmp_path / name


def test_a_key_added_then_the_first_removed_leaves_the_data_readable_with_the_second(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    [first] = key_ids(str(remote), tmp_path)
    new = pw_file(tmp_path, SECOND)
    out = vs(
        "key", "add", str(remote), "--new-password-file", new, "--scrypt-log2n", "10", cwd=tmp_path
    )
    [added] = re.findall(r"added key ([0-9a-f]{16})", out.stdout)
    assert sorted(key_ids(str(remote), tmp_path)) == sorted([first, added])
    # both passphrases open it now
    assert snapshot_tree(clone_with(tmp_path, remote, SECOND, "b")) == snapshot_tree(a)
    # the first key removed, authorised by the second passphrase
    vs("key", "remove", str(remote), "--id", first, cwd=tmp_path, env={"VSYNC_PASSWORD": SECOND})
    assert key_ids(str(remote), tmp_path) == [added]
    assert snapshot_tree(clone_with(tmp_path, remote, SECOND, "c")) == snapshot_tree(a)
    out = vs("clone", remote, "d", cwd=tmp_path, check=False)  # the first passphrase
    one_error_line(out, 2, "opens none of the 1 key of")
    assert not (tmp_path / "d").exists()


def test_the_last_key_and_a_key_removing_itself_are_refused(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    [first] = key_ids(str(remote), tmp_path)
    out = vs("key", "remove", str(remote), "--id", first, cwd=tmp_path, check=False)
    one_error_line(out, 2, "last key")
    vs(
        "key",
        "add",
        str(remote),
        "--new-password-file",
        pw_file(tmp_path, SECOND),
        "--scrypt-log2n",
        "10",
        cwd=tmp_path,
    )
    out = vs("key", "remove", str(remote), "--id", first, cwd=tmp_path, check=False)
    one_error_line(out, 2, "opens only key", "another key")
    out = vs("key", "remove", str(remote), "--id", "0123456789abcdef", cwd=tmp_path, check=False)
    one_error_line(out, 2, "no key 0123456789abcdef")
    out = vs("key", "remove", str(remote), "--id", "../vsync-remote", cwd=tmp_path, check=False)
    one_error_line(out, 2, "not a key id")
    assert len(key_ids(str(remote), tmp_path)) == 2
    out = vs(
        "key",
        "add",
        str(remote),
        "--new-password-file",
        pw_file(tmp_path, THIRD),
        cwd=tmp_path,
        check=False,
        env={"VSYNC_PASSWORD": "wrong"},
    )
    one_error_line(out, 2, "opens none of the 2 keys of")
    assert len(key_ids(str(remote), tmp_path)) == 2


def test_change_replaces_the_key_the_passphrase_opens(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)  # origin = remote: the default remote
    [first] = key_ids(str(remote), tmp_path)
    out = vs(
        "key",
        "change",
        "--new-password-file",
        pw_file(tmp_path, THIRD),
        "--scrypt-log2n",
        "10",
        cwd=a,
    )
    [(old, new)] = re.findall(r"changed key ([0-9a-f]{16}) to ([0-9a-f]{16})", out.stdout)
    assert old == first and key_ids(str(remote), tmp_path) == [new]
    assert snapshot_tree(clone_with(tmp_path, remote, THIRD, "b")) == snapshot_tree(a)
    one_error_line(vs("fetch", cwd=a, check=False), 2, "opens none")
    vs("fetch", cwd=a, env={"VSYNC_PASSWORD": THIRD})


def test_key_list_shows_slots_without_secrets(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_vsync("key", "list", remote, cwd=tmp_path).stdout  # no passphrase needed
    [line] = out.splitlines()
    assert re.fullmatch(
        r"[0-9a-f]{16}  created \d{4}-\d\d-\d\d \d\d:00 UTC  scrypt log2n=10 r=8 p=2 \(1 MiB\)",
        line,
    ), line
    assert FIRST not in out
    # a planted file that is not a key file is shown as such, and skipped
    (remote / "keys" / "00000000000000ff").write_bytes(b"x" * 108)
    out = run_vsync("key", "list", remote, cwd=tmp_path).stdout
    assert "00000000000000ff  unreadable (not a version 1 scrypt key file)" in out


@pytest.mark.parametrize("point", ["objstore-before-link", "key-written", "key-removing"])
def test_a_key_change_killed_at_any_step_leaves_a_readable_remote(
    tmp_path: Path, point: str
) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    [first] = key_ids(str(remote), tmp_path)
    new = pw_file(tmp_path, SECOND)
    out = vs(
        "key",
        "change",
        str(remote),
        "--new-password-file",
        new,
        "--scrypt-log2n",
        "10",
        cwd=tmp_path,
        check=False,
        env={"VSYNC_FAULTS": f"key/{point}=kill"},
    )
    assert out.returncode == -9, (out.returncode, out.stderr)
    keys = key_ids(str(remote), tmp_path)
    # before the new key is whole only the old one opens; after, both do
    assert len(keys) == (1 if point == "objstore-before-link" else 2)
    assert snapshot_tree(clone_with(tmp_path, remote, FIRST, "old")) == snapshot_tree(a)
    if point != "objstore-before-link":
        assert snapshot_tree(clone_with(tmp_path, remote, SECOND, "new")) == snapshot_tree(a)
    # finishing the job: a remove of the old key, or the change again
    if point == "objstore-before-link":
        vs(
            "key",
            "change",
            str(remote),
            "--new-password-file",
            new,
            "--scrypt-log2n",
            "10",
            cwd=tmp_path,
        )
    else:
        vs(
            "key",
            "remove",
            str(remote),
            "--id",
            first,
            cwd=tmp_path,
            env={"VSYNC_PASSWORD": SECOND},
        )
    assert len(key_ids(str(remote), tmp_path)) == 1
    out = vs("clone", remote, "again", cwd=tmp_path, check=False)
    one_error_line(out, 2, "opens none")
    assert snapshot_tree(clone_with(tmp_path, remote, SECOND, "last")) == snapshot_tree(a)


def test_keys_over_ssh(tmp_path: Path, sshd_server: object) -> None:
    ssh = RemoteKind("ssh", sshd_server)
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    url = ssh.url(remote)
    env = {**(ssh.env or {})}
    [first] = key_ids(url, tmp_path, env, *ssh.cmd())
    out = vs(
        "key",
        "add",
        url,
        *ssh.cmd(),
        "--new-password-file",
        pw_file(tmp_path, SECOND),
        "--scrypt-log2n",
        "10",
        cwd=tmp_path,
        env=env,
    )
    [added] = re.findall(r"added key ([0-9a-f]{16})", out.stdout)
    vs(
        "key",
        "remove",
        url,
        *ssh.cmd(),
        "--id",
        first,
        cwd=tmp_path,
        env={**env, "VSYNC_PASSWORD": SECOND},
    )
    assert key_ids(url, tmp_path, env, *ssh.cmd()) == [added]
    assert snapshot_tree(clone_with(tmp_path, remote, SECOND, "b")) == snapshot_tree(a)
    out = vs("clone", *ssh.cmd(), url, "c", cwd=tmp_path, check=False, env=env)
    one_error_line(out, 2, "opens none")


class _RacingStore(FolderStore):
    """A folder store where another client removes ``victim`` right after our delete."""

    def __init__(self, root: Path, victim: str) -> None:
        super().__init__(root)
        self.victim = victim

    def delete(self, name: str) -> bool:
        done = super().delete(name)
        if name != self.victim:
            super().delete(self.victim)
        return done


def test_two_racing_removes_never_leave_a_remote_without_keys(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    store = FolderStore(remote)
    added = str(add_key(store, FIRST, SECOND, "r", 10).added)
    [original] = [n.split("/")[1] for n in store.list("keys/") if not n.endswith(added)]
    # remove the original key (with the second passphrase) while another client
    # removes the added one (with the first): one of them must stay
    racing = _RacingStore(remote, f"keys/{added}")
    with pytest.raises(UsageError, match=r"removed key .* meanwhile"):
        remove_key(racing, SECOND, original, "r")
    assert store.list("keys/") == [f"keys/{original}"]
    assert open_key(store, FIRST, "r") is not None
