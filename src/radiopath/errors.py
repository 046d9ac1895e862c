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
