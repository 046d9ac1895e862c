"""Receiving one patient's files: streamed into a private folder, size-limited, type-checked.

The multipart body is parsed as it arrives (python-multipart, the parser Starlette itself
uses) and every file part is written straight into a folder only this process can read
(``mkdtemp``, mode 0700) under a name *we* choose (``us_1.png``, ``cytology/patch_003.png``):
the client's file name never touches the disk, a log or a reply. The whole body and each file
are counted while they stream, so an oversized upload is refused (413) without being stored
whole; each file's type is checked by its first bytes (PNG, JPEG, TIFF — SVS and NDPI are
TIFF — BMP, GIF, DICOM), never by its name. :func:`private_folder` removes everything when
the request is done, whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from radiopath.errors import ImageReadError, RadiopathError
from radiopath.io.images import sniff_format

#: File fields of one patient, and how many files each takes.
FILE_FIELDS = {"us_1": 1, "us_2": 1, "us_1_mask": 1, "us_2_mask": 1, "cytology": 1000}
#: Text fields accepted besides ``clin_*`` covariates.
TEXT_FIELDS = ("cytology_mpp", "us_1_box", "us_2_box")
#: Largest text field, bytes.
MAX_TEXT = 1000
#: Suffixes a cytology slide keeps (OpenSlide picks some readers by suffix); others get the sniffed one.
SLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".tif", ".tiff", ".bif", ".vms", ".vmu", ".svslide")
_SUFFIX_OF = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif", "DICOM": ".dcm"}


class UploadError(RadiopathError):
    """An upload the server refuses; ``status`` is the HTTP status, ``field`` the form field."""

    def __init__(self, message: str, fix: str, status: int = 400, field: str | None = None) -> None:
        self.message, self.fix, self.status, self.field = message, fix, status, field
        super().__init__(f"{message}; {fix}")


@dataclass
class SavedFile:
    """One uploaded file as stored: where, its format, size and sha256 (for the audit log)."""

    path: Path
    format: str
    bytes: int
    sha256: str
    client_suffix: str = ""  # a slide's suffix (OpenSlide reads NDPI and others by it); never the name


@dataclass
class Upload:
    """A received form: files per field (in upload order) and text fields."""

    folder: Path
    files: dict[str, list[SavedFile]] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A folder only this user can read, removed with everything in it at the end of the block."""
    folder = Path(tempfile.mkdtemp(prefix="radiopath-request-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def receive(
    content_type: str | None,
    length: str | None,
    chunks: AsyncIterator[bytes],
    folder: Path,
    max_bytes: int,
    max_file_bytes: dict[str, int],
) -> Upload:
    """Parse a ``multipart/form-data`` body from ``chunks`` into ``folder`` (see module docstring).

    Raises:
        UploadError: not multipart (415), too large (413), an unknown or repeated field, a file
            that is not an image of an accepted type (415), a text field too long (400).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(
            "the request is not a multipart/form-data upload", "send the form as multipart", 415
        )
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise UploadError(_too_large(max_bytes), "upload fewer or smaller files", 413)
    state = _Parts(folder, max_file_bytes)
    parser = MultipartParser(boundary, state.callbacks())
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            state.abort()
            raise UploadError(_too_large(max_bytes), "upload fewer or smaller files", 413)
        parser.write(chunk)
        state.raise_pending()
    parser.finalize()
    state.raise_pending()
    return state.finish()


def _too_large(max_bytes: int) -> str:
    return f"the upload is larger than this server accepts ({max_bytes / 2**20:.0f} MB)"


class _Parts:
    """The parser's callbacks: one part at a time into a file or a text buffer."""

    def __init__(self, folder: Path, limits: dict[str, int]) -> None:
        self.upload = Upload(folder)
        self.limits = limits
        self.error: UploadError | None = None
        self._headers: dict[str, str] = {}
        self._field, self._value = b"", b""
        self._name: str | None = None
        self._fh: BinaryIO | None = None
        self._path: Path | None = None
        self._text = bytearray()
        self._size = 0
        self._hash = hashlib.sha256()
        self._is_file = False
        self._suffix = ""

    def callbacks(self) -> dict:  # type: ignore[type-arg]
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_field", self._field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_value", self._value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def raise_pending(self) -> None:
        if self.error is not None:
            self.abort()
            raise self.error

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _fail(self, error: UploadError) -> None:
        if self.error is None:
            self.error = error

    def _begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""
        self._name, self._text, self._size, self._hash = None, bytearray(), 0, hashlib.sha256()
        self._is_file = False

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("latin-1")
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in params
        self._name = name
        self._suffix = Path(params.get(b"filename", b"").decode("utf-8", "replace")).suffix.lower()
        if self.error is not None:
            return
        if self._is_file:
            if name not in FILE_FIELDS:
                return self._fail(UploadError(f"unknown file field '{_safe(name)}'", _fields_fix(), 400))
            have = len(self.upload.files.get(name, []))
            if have >= FILE_FIELDS[name]:
                return self._fail(
                    UploadError(f"too many files in '{name}'", "upload one file there", 400, name)
                )
            if params.get(b"filename", b"") == b"":  # an empty file input of the browser form
                self._name = None
                return None
            self._path = _target(self.upload.folder, name, have)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._path, "xb")  # noqa: SIM115 - closed in _end or abort
        elif not (name in TEXT_FIELDS or re.fullmatch(r"clin_[A-Za-z0-9_]+", name)):
            self._fail(UploadError(f"unknown field '{_safe(name)}'", _fields_fix(), 400))
        return None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None or self._name is None:
            return
        chunk = data[start:end]
        self._size += len(chunk)
        if self._is_file:
            limit = self.limits.get(self._name, 0)
            if limit and self._size > limit:
                return self._fail(
                    UploadError(
                        f"{label(self._name)} is larger than {limit / 2**20:.0f} MB",
                        "upload a smaller export of the image",
                        413,
                        self._name,
                    )
                )
            if self._fh is not None:
                self._fh.write(chunk)
                self._hash.update(chunk)
        elif self._size > MAX_TEXT:
            self._fail(
                UploadError(f"field '{self._name}' is too long", "send a short value", 400, self._name)
            )
        else:
            self._text += chunk
        return None

    def _end(self) -> None:
        if self.error is not None or self._name is None:
            self.abort()
            return
        if not self._is_file:
            self.upload.text[self._name] = self._text.decode("utf-8", "replace").strip()
            return
        assert self._fh is not None and self._path is not None
        self._fh.close()
        self._fh = None
        if self._size == 0:
            self._path.unlink()
            return self._fail(
                UploadError(f"{label(self._name)} is an empty file", "choose the file again", 400, self._name)
            )
        try:
            fmt = sniff_format(self._path)
        except ImageReadError:
            return self._fail(
                UploadError(
                    f"{label(self._name)} is not an image of an accepted type",
                    "upload PNG, JPEG, TIFF or DICOM (a cytology slide: SVS, NDPI or tiled TIFF)",
                    415,
                    self._name,
                )
            )
        saved = SavedFile(self._path, fmt, self._size, self._hash.hexdigest(), self._suffix)
        self.upload.files.setdefault(self._name, []).append(saved)
        return None

    def finish(self) -> Upload:
        """Name files by their format (a slide keeps its slide suffix); one cytology file is a
        slide or an image, several are a folder of patches."""
        folder = self.upload.folder
        for name, files in self.upload.files.items():
            for i, f in enumerate(files):
                suffix = _SUFFIX_OF.get(f.format, ".bin")
                if f.format == "TIFF" and f.client_suffix in SLIDE_SUFFIXES:
                    suffix = f.client_suffix
                if name == "cytology" and len(files) == 1:
                    target = folder / f"cytology{suffix}"
                elif name == "cytology":
                    target = folder / "cytology" / f"patch_{i:04d}{suffix}"
                else:
                    target = folder / f"{name}{suffix}"
                f.path.rename(target)
                f.path = target
        if len(self.upload.files.get("cytology", [])) == 1:
            (folder / "cytology").rmdir()
        return self.upload


def _target(folder: Path, name: str, index: int) -> Path:
    if name == "cytology":
        return folder / "cytology" / f"part_{index:04d}.upload"
    return folder / f"{name}.upload"


def label(name: str) -> str:
    """The form field as the page names it (for messages)."""
    labels = {
        "us_1": "ultrasound view 1",
        "us_2": "ultrasound view 2",
        "us_1_mask": "the nodule mask of view 1",
        "us_2_mask": "the nodule mask of view 2",
        "us_1_box": "the nodule box of view 1",
        "us_2_box": "the nodule box of view 2",
        "cytology": "the cytology file",
    }
    return labels.get(name, name)


def _fields_fix() -> str:
    return f"send only {', '.join(FILE_FIELDS)} (files), {', '.join(TEXT_FIELDS)} and clin_* fields"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "?", name)[:40]
