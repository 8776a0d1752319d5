"""The repository config file: read without dulwich when it has the plain shape
dulwich writes (vsync.model.config.read_plain), and then read exactly as dulwich
reads it; any other shape is left to dulwich."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

from dulwich.config import ConfigFile
from hypothesis import given, settings
from hypothesis import strategies as st

from vsync.model.config import RepoConfig, plain_get, read_plain

NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,11}", fullmatch=True)
SUB = st.text(
    st.characters(codec="utf-8", exclude_characters='"\\\n\r\x00'), min_size=0, max_size=12
)
VALUE = st.text(
    st.characters(codec="utf-8", exclude_characters='"\\\n\r\x00#;', exclude_categories=["Cs"]),
    max_size=20,
)
SECTION = st.tuples(NAME) | st.tuples(NAME, SUB)
SETTINGS = st.lists(st.tuples(SECTION, NAME, VALUE), max_size=12)


def written_by_dulwich(settings_: list[tuple[tuple[str, ...], str, str]]) -> bytes:
    cf = ConfigFile()
    for section, key, value in settings_:
        cf.set(tuple(s.encode() for s in section), key.encode(), value.encode())
    out = BytesIO()
    cf.write_to_file(out)
    return out.getvalue()


def dulwich_get(data: bytes, section: tuple[str, ...], key: str) -> str | None:
    cf = ConfigFile.from_file(BytesIO(data))
    try:
        return cf.get(tuple(s.encode() for s in section), key.encode()).decode()
    except KeyError:
        return None


@settings(max_examples=150, deadline=None)
@given(SETTINGS, st.lists(st.tuples(SECTION, NAME), max_size=6))
def test_a_file_dulwich_wrote_reads_the_same_without_dulwich(
    settings_: list[tuple[tuple[str, ...], str, str]], extra: list[tuple[tuple[str, ...], str]]
) -> None:
    """Every key written, in the case it was written and in other cases, and keys
    not written (also under a subsection, which falls back to the section), give
    what dulwich gives, whenever read_plain takes the file at all."""
    data = written_by_dulwich(settings_)
    plain = read_plain(data)
    if plain is None:
        return  # another shape: dulwich reads it (see the next test for which)
    asked = [(s, k) for s, k, _ in settings_] + extra
    asked += [((s[0].upper(), *s[1:]), k.swapcase()) for s, k in asked]
    for section, key in asked:
        assert plain_get(plain, section, key, None) == dulwich_get(data, section, key), (
            data,
            section,
            key,
        )


def test_what_vsync_writes_is_plain(tmp_path: Path) -> None:
    """init's config and a remote are in the plain shape: opening a repository never
    loads dulwich's parser for them."""
    data = (
        b"[vsync]\n\tformat = 1\n\tbare = false\n[chunking]\n\tminSize = 32768\n"
        b'[remote "origin"]\n\turl = ssh://me@127.0.0.1:2222/srv/a b/repo\n'
    )
    plain = read_plain(data)
    assert plain is not None
    assert plain_get(plain, ("remote", "origin"), "url", None) == (
        "ssh://me@127.0.0.1:2222/srv/a b/repo"
    )
    assert plain_get(plain, ("chunking",), "minsize", None) == "32768"


def test_other_shapes_are_left_to_dulwich(tmp_path: Path) -> None:
    """Quotes, escapes, comments after a value, a key with no value, old-style
    subsections and text before any section: read_plain declines; RepoConfig then
    gives dulwich's reading."""
    for data, section, key, want in (
        (b'[a]\n\tk = "x ; y"\n', ("a",), "k", "x ; y"),
        (b"[a]\n\tk = x \\\n y\n", ("a",), "k", "x y"),
        (b"[a]\n\tk = x # note\n", ("a",), "k", "x"),
        (b"[a]\n\tflag\n", ("a",), "flag", "true"),
        (b"[a.b]\n\tk = v\n", ("a", "b"), "k", "v"),
        (b"k = v\n[a]\n", ("a",), "k", None),
    ):
        if data.startswith(b"k = v"):
            assert read_plain(data) is None
            continue
        assert read_plain(data) is None, data
        path = tmp_path / "config"
        path.write_bytes(data)
        got = RepoConfig(path).get(section, key)
        assert got == dulwich_get(data, section, key) == want, data


def test_opening_a_repository_does_not_load_dulwich(tmp_path: Path, vsync) -> None:
    """A clean status is mostly start-up: reading the config must not load dulwich
    (and logging with it). Checked in a fresh interpreter."""
    import subprocess

    vsync("init", str(tmp_path / "r"))
    code = (
        "import sys; from pathlib import Path; from vsync.model.repository import Repository\n"
        f"r = Repository.discover(Path({str(tmp_path / 'r')!r}))\n"
        "assert not r.config.bare\n"
        "print(sorted(m for m in sys.modules if m.startswith(('dulwich', 'logging'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_change_is_written_by_dulwich_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"[vsync]\n\tformat = 1\n")
    cfg = RepoConfig(path)
    cfg.set(("remote", "origin"), "url", 'has "quotes" and ; and #')
    assert cfg.get(("remote", "origin"), "url") == 'has "quotes" and ; and #'
    cfg.save()
    again = RepoConfig(path)
    assert again.get(("remote", "origin"), "url") == 'has "quotes" and ; and #'
    assert again.get(("vsync",), "format") == "1"
