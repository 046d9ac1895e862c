"""Image size and sample depth from a file's header, without decoding any pixel.

Used to bound decoding (:mod:`radiopath.io.limits`) and to pick the right decoder for deep
(16-bit) data before the decoder runs. Each parser reads a few hundred bytes; a header that
cannot be parsed gives ``None`` and the decoder's own error explains the damage later.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic…), not DHT/JPG/DAC.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_JPEG_SEGMENTS = 512


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR (and sBIT, when present) chunk says."""

    width: int
    height: int
    bit_depth: int
    colour_type: int  # 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
    significant_bits: int | None  # from sBIT; None when the file has no sBIT chunk


def header_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, GIF or BMP file, else None."""
    try:
        with open(path, "rb") as fh:
            if fmt == "PNG":
                png = _png(fh.read(4096))
                return (png.width, png.height) if png else None
            if fmt == "GIF":
                head = fh.read(10)
                return struct.unpack("<HH", head[6:10]) if len(head) == 10 else None
            if fmt == "BMP":
                head = fh.read(26)
                if len(head) < 26:
                    return None
                w, h = struct.unpack("<ii", head[18:26])
                return abs(w), abs(h)
            if fmt == "JPEG":
                return _jpeg_size(fh)
    except OSError:
        return None
    return None


def png_header(path: Path) -> PngHeader | None:
    """The IHDR and sBIT of a PNG file (sBIT comes before the image data, so 64 KiB suffice)."""
    try:
        with open(path, "rb") as fh:
            return _png(fh.read(65536))
    except OSError:
        return None


def _png(data: bytes) -> PngHeader | None:
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    sbit: int | None = None
    pos = 33  # signature (8) + IHDR length, type, 13 bytes of data, CRC
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"sBIT" and length >= 1 and pos + 8 + length <= len(data):
            values = data[pos + 8 : pos + 8 + length]
            channels = values[:3] if colour in (2, 6) else values[:1]  # alpha depth is not grey depth
            sbit = max(channels) if channels else None
            break
        pos += 12 + length
    return PngHeader(width, height, depth, colour, sbit or None)


def _jpeg_size(fh: object) -> tuple[int, int] | None:
    read = fh.read  # type: ignore[attr-defined]
    if read(2) != b"\xff\xd8":
        return None
    for _ in range(_MAX_JPEG_SEGMENTS):
        byte = read(1)
        if byte != b"\xff":
            return None
        while byte == b"\xff":  # a marker, after any fill bytes
            byte = read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        raw = read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if marker in _SOF:
            frame = read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        if length < 2:
            return None
        fh.seek(length - 2, 1)  # type: ignore[attr-defined]
    return None
