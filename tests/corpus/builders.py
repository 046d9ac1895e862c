"""Small writers of good and bad inputs, shared by the corpus, fuzz and io tests.

Every function writes into a folder it is given and returns the path it wrote; nothing is
downloaded and nothing outside the folder is touched.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

#: Columns of the small manifests written here.
COLUMNS = ("patient_id", "center", "cohort", "lnm", "us_1", "us_2", "us_1_box")


def noise_png(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A unique 8-bit grey noise PNG (``size`` is width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(path)
    return path


def manifest_rows(folder: Path, n: int = 6) -> list[dict[str, str]]:
    """``n`` valid patients (two centers, both classes) with their images written to ``folder/us``."""
    rows = []
    for i in range(n):
        noise_png(folder / "us" / f"p{i}_1.png", seed=i)
        rows.append(
            {
                "patient_id": f"P{i:03d}",
                "center": "A" if i < n - 2 else "B",
                "cohort": "development" if i < n - 2 else "external",
                "lnm": str(i % 2),
                "us_1": f"us/p{i}_1.png",
                "us_2": "",
                "us_1_box": "2,2,30,30" if i == 0 else "",
            }
        )
    return rows


def write_manifest(
    folder: Path, rows: list[dict[str, str]] | None = None, sep: str = ",", **kw: object
) -> Path:
    """A manifest CSV in ``folder`` (default: :func:`manifest_rows`), every cell written as text."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = manifest_rows(folder) if rows is None else rows
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False, sep=sep, **kw)  # type: ignore[arg-type]
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(path: Path, width: int, height: int, depth: int = 8, colour: int = 0) -> Path:
    """A PNG whose header claims ``width x height`` but holds (almost) no image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(data + png_chunk(b"IEND", b""))
    return path


def with_sbit(png: bytes, bits: int) -> bytes:
    """``png`` with an sBIT chunk (significant bits per grey sample) inserted after IHDR."""
    end = 8 + 8 + 13 + 4
    return png[:end] + png_chunk(b"sBIT", bytes([bits])) + png[end:]


def jpeg_with_size(path: Path, width: int, height: int) -> Path:
    """A small real JPEG whose start-of-frame header is rewritten to claim ``width x height``."""
    Image.new("L", (16, 16), 128).save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    path.write_bytes(bytes(data))
    return path


def dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    bits_stored: int | None = None,
    rows: int | None = None,
    columns: int | None = None,
    transfer_syntax: str | None = None,
    **tags: object,
) -> Path:
    """A minimal single-frame MONOCHROME2 DICOM file; ``pixels=None`` leaves out the pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Doe^Jane"
    h, w = pixels.shape[:2] if pixels is not None else (rows or 8, columns or 8)
    ds.Rows, ds.Columns = rows or h, columns or w
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    item = 16 if pixels is not None and pixels.dtype == np.uint16 else 8
    ds.BitsAllocated = item
    ds.BitsStored = bits_stored or item
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixels is not None:
        data = np.ascontiguousarray(pixels).tobytes()
        if meta.TransferSyntaxUID.is_compressed:  # raw bytes under a compressed syntax: a wrong file
            from pydicom.encaps import encapsulate

            data = encapsulate([data])
        ds.PixelData = data
    ds.save_as(path, enforce_file_format=True)
    return path
