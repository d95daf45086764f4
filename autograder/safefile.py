"""Reading what students submitted without trusting it: no links, no special files, bounded size.

Everything the autograder reads from a submission (notebooks, ``timestamp.txt``,
``submission_secret.txt``) goes through :func:`read_file`; the batch lists ``submitted/`` with
:func:`entries`.  Rules:

* Symbolic links are never followed: not the file, and not a folder on the way to it below
  ``within`` (``submitted/<student>/<assignment>/`` can all be links planted by a student).
  A link pointing at the instructor's notebook or at another student's work is refused, not read.
* Only regular files with one name are read: FIFOs, sockets, device files, folders in place of a
  file and hard links (a second name for somebody else's file) are refused.
* The size is checked with ``fstat`` on the opened descriptor BEFORE reading, and at most
  ``cap + 1`` bytes are ever read (a sparse 1 TB file, or a file that grows while it is read,
  costs nothing).

A refusal raises :class:`UnsafeFile` whose message names the file (relative to ``within``) and
the reason, never its content; callers turn it into a score of 0 with that reason.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["UnsafeFile", "read_file", "entries", "kind_at", "kind_of"]


class UnsafeFile(Exception):
    """A submitted path that must not be read; ``str(exc)`` is the reason (safe to show)."""


def kind_of(mode: int) -> str:
    """What a file is, in words, from its ``st_mode``."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device file"), (stat.S_ISBLK, "a device file"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def _parts(path: Path, within: Path | None) -> tuple[Path, list[str]]:
    """``(trusted start folder, components below it)``; ``within`` itself is trusted."""
    path = Path(path)
    if within is None:
        return path.parent, [path.name]
    rel = path.relative_to(within)          # ValueError: not below within (a caller's bug)
    parts = list(rel.parts)
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise UnsafeFile(f"{rel} is not a file below {within.name}")
    return Path(within), parts


def _open_dir_chain(start: Path, parts: list[str]) -> int:
    """An fd for ``start/parts[0]/.../parts[-1]`` opened without following any link."""
    fd = os.open(start, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            where = "/".join(parts[:i + 1])
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeFile(f"{where} is {kind_of(st.st_mode)}, not a folder")
            try:
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFile(f"{where} is not a plain folder (it changed while being read)") from None
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | os.PathLike, cap: int, *, within: str | os.PathLike | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``cap``), or :class:`UnsafeFile`.

    ``within``: a trusted folder above ``path`` (e.g. the course directory); no component
    between it and the file may be a link.  Without it only the file itself is checked.
    ``FileNotFoundError`` propagates (a missing optional file is not an attack).
    """
    start, parts = _parts(Path(path), None if within is None else Path(within))
    shown = "/".join(parts)
    dfd = _open_dir_chain(start, parts[:-1])
    try:
        name = parts[-1]
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)      # before opening: never open a device
        _check_regular(st, shown, cap)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(f"{shown} is a symbolic link (only regular files are accepted)") from None
            raise
    finally:
        os.close(dfd)
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise UnsafeFile(f"{shown} was replaced while it was being read")
        _check_regular(fst, shown, cap)
        chunks, total = [], 0
        while total <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:
            raise UnsafeFile(f"{shown} grew beyond the limit of {_size(cap)} while it was being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_regular(st: os.stat_result, shown: str, cap: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{shown} is {kind_of(st.st_mode)}; only regular files are accepted")
    if st.st_nlink != 1:
        raise UnsafeFile(f"{shown} is a hard link (the file has {st.st_nlink} names); "
                         "only files of your own are accepted")
    if st.st_size > cap:
        raise UnsafeFile(f"{shown} is {_size(st.st_size)}; the limit is {_size(cap)}")


def _size(n: int) -> str:
    for unit, shift in (("GB", 30), ("MB", 20), ("kB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def kind_at(path: str | os.PathLike, *, within: str | os.PathLike) -> str | None:
    """What ``path`` is (``kind_of`` words, a link is not followed), None if it does not exist;
    no folder between ``within`` and it may be a link (else :class:`UnsafeFile`)."""
    start, parts = _parts(Path(path), Path(within))
    try:
        fd = _open_dir_chain(start, parts[:-1])
    except FileNotFoundError:
        return None
    try:
        return kind_of(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def entries(folder: str | os.PathLike, *, within: str | os.PathLike | None = None,
            limit: int | None = 10_000) -> dict[str, str]:
    """``{name: kind}`` of a folder's entries, never following links (``kind_of`` words).

    The folder itself must be reachable from ``within`` without links, and hold at most
    ``limit`` entries (None: no limit), else :class:`UnsafeFile`.
    """
    folder = Path(folder)
    if within is None:
        start, parts = folder, []
    else:
        rel = folder.relative_to(Path(within))
        start, parts = Path(within), list(rel.parts)
    fd = _open_dir_chain(start, parts)
    out = {}
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if limit is not None and len(out) >= limit:
                    raise UnsafeFile(f"{'/'.join(parts) or folder.name} holds more than {limit} entries")
                try:
                    out[entry.name] = kind_of(entry.stat(follow_symlinks=False).st_mode)
                except FileNotFoundError:
                    continue
    finally:
        os.close(fd)
    return out
