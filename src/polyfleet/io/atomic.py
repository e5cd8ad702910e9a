"""The one function that writes an output file, without destroying what stands at the path.

Every file polyfleet writes (``--out``, ``--routes``, ``--chart``, calibration and
catalog files) goes through :func:`write_output`, whose rules (README, "Output files")
are those of a careful Unix tool:

* **a regular file, or nothing there**: write a temporary file in the same directory,
  fsync it, rename it over the target.  A half-written file never appears; a new file
  gets the mode the umask gives (0644 under umask 022); an existing file keeps its mode
  (and its owner, where the process may set it).
* **a symlink**: resolved, and the rule above applied to its target; the link stays.
* **anything else that exists** (character or block device, FIFO, socket): written
  through in place, never renamed over, so ``/dev/null``, ``/dev/stdout`` and process
  substitution (``--out >(jq .)``) behave as in any Unix tool.
* **``-``**: standard output.
* **a directory, a missing parent, a parent that is a file, a read-only place, a full
  disk or quota**: :class:`OutputError` with one line naming the path and the reason;
  the old file is untouched and the temporary file removed.

Callers write only after their work succeeded, so a failed run never touches the path.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

STDOUT = "-"

#: errno -> the reason a person reads; everything else falls back to ``os.strerror``.
_REASONS = {
    errno.ENOENT: "no such directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
}

#: errors met while writing the bytes (the path itself was fine): the run could not finish.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


class OutputError(Exception):
    """An output path that cannot be written: one line naming the path and the reason.

    ``exit_code`` is 2 when the path is wrong (a directory, a missing or non-directory
    parent, a read-only place: bad input) and 1 when the path was fine but the bytes could
    not be written (full disk, quota, I/O error: the run could not finish its work).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, exit_code: int = 2) -> None:
        self.path = str(path)
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(self.render())

    def render(self) -> str:
        return f"cannot write {self.path}: {self.reason}"


def _from_oserror(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    code = exc.errno if exc.errno is not None else 0
    reason = _REASONS.get(code) or exc.strerror or str(exc)
    return OutputError(path, reason, exit_code=1 if code in _WRITE_ERRNOS else 2)


def _resolve(path: Path) -> Path:
    """The path to write: a symlink (chain) resolved to its target, anything else as given."""
    if path.is_symlink():
        try:
            return Path(os.path.realpath(path, strict=False))
        except OSError as exc:  # a symlink loop
            raise _from_oserror(path, exc) from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` now if ``path`` can never be written (before long work runs).

    Checks what can be known without writing: ``-`` and existing non-directories pass; a
    directory, a missing parent, a parent that is not a directory or a parent this process
    cannot write into fail.  A full disk is only found when writing.
    """
    given = Path(path)
    if str(path) == STDOUT:
        return
    target = _resolve(given)
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _from_oserror(given, exc) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(given, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            return  # device, FIFO, socket: written through in place
    parent = target.parent
    try:
        pst = parent.stat()
    except OSError as exc:
        raise _from_oserror(given, exc) from None
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputError(given, "a parent is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only_fs(parent) else "permission denied"
        raise OutputError(given, reason)


def _read_only_fs(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:  # pragma: no cover - statvfs on an odd file system
        return False


def _write_through(target: Path, write: Callable[[BinaryIO], None], mode: int) -> None:
    """Write into an existing device, FIFO or socket in place (opening a FIFO waits for a reader)."""
    if stat.S_ISSOCK(mode):  # a Unix socket is connected to, not opened
        buffer = io.BytesIO()
        write(buffer)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(target))
            sock.sendall(buffer.getvalue())
        return
    with open(target, "wb") as fh:
        write(fh)
        fh.flush()


def _write_replace(target: Path, write: Callable[[BinaryIO], None], existing: os.stat_result | None) -> None:
    """Temp file in the target's directory, fsync, rename over the target; temp removed on failure."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if existing is not None:
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            with contextlib.suppress(OSError):  # only root (or the owner, for the group) may
                os.fchown(fd, existing.st_uid, existing.st_gid)
        else:
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the file system allows
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_output(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Write an output file by the rules in this module's docstring; ``write`` gets a binary file.

    Raises :class:`OutputError` (one line: the path and the reason) for any path or disk
    problem.  Exceptions raised by ``write`` itself propagate unchanged, the path untouched
    (for a regular file or a new one).
    """
    if str(path) == STDOUT:
        out = sys.stdout.buffer
        write(out)
        out.flush()
        return
    given = Path(path)
    target = _resolve(given)
    try:
        try:
            existing: os.stat_result | None = target.stat()
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise OutputError(given, "is a directory")
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            _write_through(target, write, existing.st_mode)
            return
        if not stat.S_ISDIR(target.parent.stat().st_mode):
            raise OutputError(given, "a parent is not a directory")
        _write_replace(target, write, existing)
    except OSError as exc:
        raise _from_oserror(given, exc) from None


def write_output_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`write_output` of ``text`` as UTF-8."""
    data = text.encode("utf-8")
    write_output(path, lambda fh: fh.write(data))
