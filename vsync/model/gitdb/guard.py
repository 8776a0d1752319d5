"""The conversion layer: failures of dulwich on damaged data become DamagedRepository.

Reading a damaged pack or loose object makes dulwich (and zlib, struct, the
OS below it) raise almost anything: ``zlib.error``, ``struct.error``,
``ChecksumMismatch``, ``ObjectFormatException``, ``AssertionError``,
``ValueError``, ``OSError``... Every read of repository data in this package
runs through :func:`guarded` (or :func:`describe` and :func:`drop_traceback`
in a hand-written ``except``), which turns any of them into one
:class:`~vsync.errors.DamagedRepository` naming the object or file.

The original exception is not chained to the new one, and the frames of its
traceback are cleared first: a frame of dulwich's pack reader may still hold
a ``memoryview`` into the pack's ``mmap``, and while it lives the mapping
cannot be closed (``BufferError: cannot close exported pointers exist``).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

from vsync.errors import FSCK_HINT, DamagedRepository

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters).

    zlib's and struct's exceptions are both called ``error``: they keep their module.
    """
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__name__}" if kind.__name__ == "error" else kind.__name__
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{name}: {first}" if first else name


def drop_traceback(exc: BaseException) -> None:
    """Clear the frames of ``exc``'s traceback (and of the exceptions chained to it)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)  # skips frames still running
            e.__traceback__ = None
        todo.extend((e.__context__, e.__cause__))


def guarded(action: Callable[[], T], damage: Callable[[str], DamagedRepository]) -> T:
    """``action()``; if it fails on damaged data, ``damage(problem)`` is raised instead.

    ``problem`` reads like "cannot be read (zlib.error: ...)". A
    DamagedRepository raised inside passes through unchanged.
    """
    try:
        return action()
    except DamagedRepository:
        raise
    except Exception as exc:  # the conversion layer: any failure on damaged data is damage
        problem = f"cannot be read ({describe(exc)})"
        drop_traceback(exc)
    raise damage(problem)  # outside the handler: the original is not chained


def file_damage(what: str) -> Callable[[str], DamagedRepository]:
    """A ``damage`` callback naming a file or part of the git repository."""

    def make(problem: str) -> DamagedRepository:
        return DamagedRepository(f"{what} {problem}; {FSCK_HINT}")

    return make
