"""One family of errors for everything radiopath reports to a user.

Every message says *what* is wrong, *where* (file, row, column) and *what to do*. Code that
catches third-party exceptions re-raises them as one of these, so the CLI can print a clean
message and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RadiopathError(Exception):
    """Base class: a problem the user can fix (bad input, bad option, missing file)."""

    exit_code: int = 2


class ConfigError(RadiopathError):
    """An option or configuration value is invalid."""


class ImageReadError(RadiopathError):
    """An image file cannot be turned into pixels.

    The message always names the file and says what to do about it.
    """

    def __init__(self, path: str | Path, reason: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.fix = fix or "check that the file is a complete PNG, JPEG, TIFF, BMP or DICOM image"
        super().__init__(f"{self.path}: {reason}; {self.fix}")


class ManifestError(RadiopathError):
    """The manifest has one or more errors; ``problems`` lists every one of them."""

    def __init__(self, path: str | Path, problems: list | None = None, message: str = "") -> None:
        self.path = Path(path)
        self.problems = list(problems or [])
        if not message:
            lines = [f"{self.path}: {len(self.problems)} problem(s) in the manifest"]
            lines += [f"  - {p}" for p in self.problems]
            message = "\n".join(lines)
        super().__init__(message)


class OutputExistsError(RadiopathError):
    """An output folder already holds results that a command would overwrite."""


class OutputFolderExistsError(OutputExistsError, FileExistsError):
    """:func:`radiopath.io.atomic.atomic_dir` refused to replace a folder that holds files.

    Also a :class:`FileExistsError`, so callers that catch that (and add their own option
    name to the message) keep working.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        kind = "a file" if self.path.is_file() else "a folder that is not empty"
        super().__init__(
            f"{self.path}: output location is {kind}; choose another output folder, "
            "or allow overwriting (the command's --overwrite option)"
        )


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than radiopath decodes whole (a decompression-bomb guard).

    Raised from the file's header, before any pixel is decoded.
    """

    def __init__(self, path: str | Path, width: int, height: int, limit: int, frames: int = 1) -> None:
        self.width, self.height, self.limit, self.frames = width, height, limit, frames
        size = f"{width}x{height} px" + (f" x {frames} frames" if frames > 1 else "")
        super().__init__(
            path,
            f"image of {size} ({width * height * frames:,} pixels) exceeds the limit of {limit:,} "
            "pixels that radiopath decodes whole",
            "downscale it, or give a cytology image as a tiled pyramidal TIFF; if it is genuine, raise "
            "the limit with the environment variable RADIOPATH_MAX_IMAGE_PIXELS (or max_pixels= in Python)",
        )


class OutputWriteError(RadiopathError):
    """An output file or folder cannot be written (disk full, read-only, a file in the way, …).

    Attributes:
        path: the output the write was for.
        errno: the operating system's error number (``errno.ENOSPC``, …) or None.
    """

    def __init__(self, path: str | Path, reason: str, fix: str, errno: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.fix = fix
        self.errno = errno
        super().__init__(f"{self.path}: cannot write output: {reason}; {fix}")
