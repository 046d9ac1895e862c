"""Atomic writes: a file or folder is either complete under its final name or absent.

Every artifact radiopath writes goes through here (write to a temporary name in the same
folder, flush, fsync, then ``os.replace``), so a crash or a bad input never leaves a
half-written file that a later stage would trust.

When the operating system refuses the write — disk or quota full, read-only file system, no
permission, a file where a folder should be, a folder where the file should be — the
temporary file is removed and :class:`~radiopath.errors.OutputWriteError` names the output
and the fix (:func:`output_error`), instead of an ``OSError`` traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from radiopath.errors import OutputFolderExistsError, OutputWriteError

#: errno values that mean "this output cannot be written here" (not "an input is bad").
WRITE_ERRNOS: frozenset[int] = frozenset(
    e
    for e in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.EEXIST,
        errno.EIO,
    )
    if e is not None
)
#: Some writers (pyarrow, OpenCV) report failures without an errno; recognise their words.
_PHRASES: tuple[tuple[str, int], ...] = (
    ("no space left", errno.ENOSPC),
    ("quota exceeded", getattr(errno, "EDQUOT", errno.ENOSPC)),
    ("read-only file system", errno.EROFS),
    ("permission denied", errno.EACCES),
    ("not a directory", errno.ENOTDIR),
    ("is a directory", errno.EISDIR),
)


def output_error(path: str | Path, exc: OSError) -> OutputWriteError:
    """The :class:`OutputWriteError` for an ``OSError`` raised while writing ``path``."""
    path = Path(path)
    code = _errno_of(exc)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        reason, fix = (
            "no space left on the device (disk or quota full)",
            (f"free space on the disk holding {path.parent}, or write the output to another disk"),
        )
    elif code == errno.EROFS:
        reason, fix = "the file system is read-only", "write the output to a folder on a writable disk"
    elif code in (errno.EACCES, errno.EPERM):
        reason, fix = (
            "permission denied",
            (f"choose an output folder you may write to, or get write permission on {path.parent}"),
        )
    elif code in (errno.ENOTDIR, errno.EEXIST) and (blocker := _file_in_the_way(path)) is not None:
        reason, fix = (
            f"{blocker} is a file, not a folder",
            ("remove or rename that file, or choose another output path"),
        )
    elif code == errno.EISDIR or path.is_dir():
        reason, fix = (
            "a folder of that name exists",
            ("give the name of a file to write, or move the folder away"),
        )
    elif code == errno.ENAMETOOLONG:
        reason, fix = "the path is too long", "choose a shorter output path"
    elif code == errno.EFBIG:
        reason, fix = "the file is too large for this file system", "write the output to another disk"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
        fix = "check the output path and the disk it is on"
    return OutputWriteError(path, reason, fix, code)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    Use this for writers that want a file name (``df.to_parquet(tmp)``, ``tifffile``).
    The temporary name keeps the same suffix, so format-sniffing writers still work.
    ``durable=False`` skips the fsync: the rename is still atomic for a killed process, but
    an operating-system crash may lose the latest version (fine for per-epoch checkpoints).

    Raises:
        OutputWriteError: the output cannot be written (the temporary file is removed).
    """
    path = Path(path)
    if path.is_dir():
        raise output_error(path, IsADirectoryError(errno.EISDIR, "Is a directory", str(path)))
    _make_parent(path)
    sfx = path.suffix if suffix is None else suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{sfx}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if _is_write_failure(exc, path):
                raise output_error(path, exc) from None
            raise
        try:
            if durable:
                _fsync_file(tmp)
            if tmp.exists():
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for colleagues too
            os.replace(tmp, path)
        except OSError as exc:
            raise output_error(path, exc) from None
    finally:
        _discard(tmp)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", durable: bool = True, **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only when the block succeeds."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not allowed")
    with atomic_path(path, durable=durable) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w", durable=durable, encoding="utf-8") as fh:
        fh.write(text)


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name and move it onto ``path`` on success.

    With ``overwrite=False`` an existing non-empty ``path`` is left alone and
    :class:`~radiopath.errors.OutputFolderExistsError` (a ``FileExistsError``) is raised
    before anything is written. A *file* at ``path`` is never replaced by a folder, even with
    ``overwrite=True``. If the final rename fails, the previous folder is put back.

    Raises:
        OutputFolderExistsError: ``path`` holds files and ``overwrite`` is False.
        OutputWriteError: the folder cannot be written (nothing is left behind).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputWriteError(
            path, "a file of that name exists", "choose another output folder, or move the file away"
        )
    if path.exists() and not overwrite and any(path.iterdir()):
        raise OutputFolderExistsError(path)
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            yield tmp
        except OSError as exc:
            if _is_write_failure(exc, path):
                raise output_error(path, exc) from None
            raise
        _swap_in(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; an existing ``path`` is moved aside first and restored on failure."""
    old = None
    try:
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as exc:
        if old is not None and old.exists() and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)
        raise output_error(path, exc) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None


def _is_write_failure(exc: OSError, path: Path) -> bool:
    """True when ``exc`` is about writing ``path`` (or its temporary twin), not about an input."""
    if _errno_of(exc) not in WRITE_ERRNOS:
        return False
    name = exc.filename
    if name is None:
        return True
    try:
        target = Path(os.fsdecode(name)).resolve()
    except (OSError, TypeError, ValueError):
        return False
    folder = path.parent.resolve()
    return target == path.resolve() or target.parent == folder or folder in target.parents


def _errno_of(exc: OSError) -> int | None:
    if exc.errno is not None:
        return exc.errno
    text = str(exc).lower()
    return next((code for phrase, code in _PHRASES if phrase in text), None)


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` that is a file (so no folder can be made), if any."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return parent if not parent.is_dir() else None
    return None


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    """Flush ``path`` to disk; file systems that cannot fsync are fine, a failing write is not."""
    try:
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            return
        raise
