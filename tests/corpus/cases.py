"""The bad-input corpus: each case writes one bad input a new user could give radiopath.

A case is a small generator function (writing the input into a fresh folder), how it is
fed to radiopath (``validate`` a manifest, ``read`` an image, or ``call`` a writer or
reader), and what must happen: the :class:`~radiopath.errors.RadiopathError` subclass and a
fragment of its message, or a problem (severity + fragment) in the validation report, or a
correct result. ``output`` names what the case tries to write, which must be absent (or
untouched) afterwards; ``cli`` cases are also run through ``radiopath validate``.

Add a case when a new kind of bad input turns up; name it ``area/what``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from corpus.builders import (
    dicom,
    jpeg_with_size,
    manifest_rows,
    noise_png,
    png_header_only,
    write_manifest,
)
from radiopath.errors import (
    ImageReadError,
    ImageTooLargeError,
    ManifestError,
    OutputWriteError,
    RadiopathError,
)
from radiopath.io.atomic import atomic_dir, atomic_open, atomic_path, write_text

Make = Callable[[Path, pytest.MonkeyPatch], Any]


@dataclass(frozen=True)
class Case:
    """One kind of bad input and what radiopath must do with it."""

    kind: str
    drive: str  # "validate" | "read" | "call"
    make: Make
    raises: type[RadiopathError] | None = None
    fragment: str = ""
    severity: str | None = None  # a problem of this severity whose text holds ``fragment``
    check: Callable[[Any], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    output: str | None = None  # relative path the case tries to write
    cli: bool = False


# ------------------------------------------------------------------------------ manifests


def _text_manifest(tmp: Path, text: str, name: str = "manifest.csv", encoding: str = "utf-8") -> Path:
    manifest_rows(tmp)  # the images the text refers to
    path = tmp / name
    path.write_bytes(text.encode(encoding))
    return path


def _csv_text(rows: list[dict[str, str]], sep: str = ",") -> str:
    return pd.DataFrame(rows).to_csv(index=False, sep=sep)


def semicolon(tmp: Path, _: object) -> Path:
    return write_manifest(tmp, sep=";")


def tab_separated(tmp: Path, _: object) -> Path:
    return write_manifest(tmp, sep="\t")


def pipe_separated(tmp: Path, _: object) -> Path:
    return write_manifest(tmp, sep="|")


def utf8_bom(tmp: Path, _: object) -> Path:
    return _text_manifest(tmp, "\ufeff" + _csv_text(manifest_rows(tmp)))


def latin1(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    for r in rows:
        r["center"] = "Zürich" if r["center"] == "A" else "Hôpital Nord"
    return _text_manifest(tmp, _csv_text(rows), encoding="latin-1")


def utf16(tmp: Path, _: object) -> Path:
    return _text_manifest(tmp, _csv_text(manifest_rows(tmp), sep="\t"), encoding="utf-16")


def duplicate_ids(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[2]["patient_id"] = rows[1]["patient_id"]
    return write_manifest(tmp, rows)


def nan_ids(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    for r, bad in zip(rows[:4], ("nan", "NA", "None", "null"), strict=False):
        r["patient_id"] = bad
    return write_manifest(tmp, rows)


def blank_id(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[1]["patient_id"] = "   "
    return write_manifest(tmp, rows)


def bad_label(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[0]["lnm"] = "yes"
    return write_manifest(tmp, rows)


def bad_cohort(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[0]["cohort"] = "Developmnet"
    return write_manifest(tmp, rows)


def _box(value: str) -> Make:
    def make(tmp: Path, _: object) -> Path:
        rows = manifest_rows(tmp)
        rows[0]["us_1_box"] = value
        return write_manifest(tmp, rows)

    return make


def missing_column(tmp: Path, _: object) -> Path:
    rows = [{k: v for k, v in r.items() if k != "lnm"} | {"LNM status": r["lnm"]} for r in manifest_rows(tmp)]
    return write_manifest(tmp, rows)


def blank_and_comment_lines(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[1]["lnm"] = "maybe"  # row 2: the error must point at its real line
    header, first, second, *rest = _csv_text(rows).splitlines()
    text = (
        "\n".join(["# study export 2024", header, "", first, "# P001 re-checked", "", second, *rest]) + "\n"
    )
    return _text_manifest(tmp, text)


def excel_as_csv(tmp: Path, _: object) -> Path:
    import zipfile

    path = tmp / "manifest.csv"
    with zipfile.ZipFile(path, "w") as z:  # what an .xlsx is
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return path


def empty_file(tmp: Path, _: object) -> Path:
    path = tmp / "manifest.csv"
    path.write_bytes(b"")
    return path


def header_only(tmp: Path, _: object) -> Path:
    return _text_manifest(tmp, "patient_id,center,cohort,lnm,us_1\n")


def too_many_cells(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    text = _csv_text(rows).splitlines()
    text[2] = text[2] + ",extra,cells"
    return _text_manifest(tmp, "\n".join(text) + "\n")


def duplicate_column(tmp: Path, _: object) -> Path:
    text = _csv_text(manifest_rows(tmp)).splitlines()
    text = [line + "," + line.split(",")[1] for line in text]  # 'center' twice
    return _text_manifest(tmp, "\n".join(text) + "\n")


def binary_as_csv(tmp: Path, _: object) -> Path:
    path = tmp / "manifest.csv"
    path.write_bytes(b"patient_id,center\x00\x00\x01\x02" + bytes(range(256)))
    return path


def damaged_parquet(tmp: Path, _: object) -> Path:
    path = tmp / "manifest.parquet"
    pd.DataFrame(manifest_rows(tmp)).to_parquet(path)
    path.write_bytes(path.read_bytes()[:200])
    return path


def windows_path(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[0]["us_1"] = "us\\p0_1.png"
    return write_manifest(tmp, rows)


def markup_in_cells(tmp: Path, _: object) -> Path:
    rows = manifest_rows(tmp)
    rows[0]["patient_id"], rows[0]["center"] = "[/]", "St. Mary [bold]"
    rows[0]["lnm"] = "[/red]"
    return write_manifest(tmp, rows)


def _manifest_with(column: str, value: Callable[[Path], str]) -> Make:
    def make(tmp: Path, _: object) -> Path:
        rows = manifest_rows(tmp)
        rows[0][column] = value(tmp)
        return write_manifest(tmp, rows)

    return make


# ------------------------------------------------------------------------------ images


def truncated_png(tmp: Path, _: object) -> Path:
    path = noise_png(tmp / "t.png", 0, (200, 150))
    path.write_bytes(path.read_bytes()[:300])
    return path


def truncated_jpeg(tmp: Path, _: object) -> Path:
    path = tmp / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:700])
    return path


def zero_bytes(tmp: Path, _: object) -> Path:
    path = tmp / "empty.png"
    path.write_bytes(b"")
    return path


def text_as_png(tmp: Path, _: object) -> Path:
    path = tmp / "notes.png"
    path.write_text("scanned by Dr. X, see report\n")
    return path


def png_magic_then_garbage(tmp: Path, _: object) -> Path:
    path = tmp / "g.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    return path


def twelve_bit_png(tmp: Path, _: object) -> Path:
    path = tmp / "us12.png"
    Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64)).save(path)
    return path


def twelve_bit_colour_png(tmp: Path, _: object) -> Path:
    import cv2

    path = tmp / "rgb12.png"
    cv2.imwrite(str(path), np.arange(4096 * 3, dtype=np.uint16).reshape(64, 64, 3) % 4096)
    return path


def sixteen_bit_rgb_tiff(tmp: Path, _: object) -> Path:
    path = tmp / "rgb16.tif"
    tifffile.imwrite(
        path, (np.arange(64 * 64 * 3).reshape(64, 64, 3) * 5).astype(np.uint16), photometric="rgb"
    )
    return path


def huge_png_header(tmp: Path, _: object) -> Path:
    return png_header_only(tmp / "bomb.png", 50_000, 50_000)


def huge_jpeg_header(tmp: Path, _: object) -> Path:
    return jpeg_with_size(tmp / "bomb.jpg", 60_000, 60_000)


def huge_tiff_header(tmp: Path, _: object) -> Path:
    path = tmp / "bomb.tif"
    tifffile.imwrite(path, shape=(12_000, 12_000), dtype=np.uint8)  # header + empty strips
    return path


def cmyk_jpeg(tmp: Path, _: object) -> Path:
    path = tmp / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red
    return path


def palette_png(tmp: Path, _: object) -> Path:
    path = tmp / "p.png"
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (0, 0, 200)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(path, transparency=0)
    return path


def grey_alpha_png(tmp: Path, _: object) -> Path:
    path = tmp / "la.png"
    Image.new("LA", (8, 8), (90, 10)).save(path)
    return path


def animated_gif(tmp: Path, _: object) -> Path:
    path = tmp / "cine.gif"
    frames = [Image.new("L", (16, 16), v) for v in (10, 200, 90)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


# ------------------------------------------------------------------------------ DICOM


def dicom_without_pixels(tmp: Path, _: object) -> Path:
    return dicom(tmp / "sr.dcm", None, rows=32, columns=32)


def dicom_truncated(tmp: Path, _: object) -> Path:
    path = dicom(tmp / "cut.dcm", np.full((64, 64), 7, np.uint8))
    path.write_bytes(path.read_bytes()[:-2000])
    return path


def text_as_dicom(tmp: Path, _: object) -> Path:
    path = tmp / "notes.dcm"
    path.write_text("not a dicom file at all\n")
    return path


def dicom_wrong_transfer_syntax(tmp: Path, _: object) -> Path:
    from pydicom.uid import JPEG2000Lossless

    return dicom(tmp / "j2k.dcm", np.full((16, 16), 9, np.uint8), transfer_syntax=JPEG2000Lossless)


def dicom_bad_tag(tmp: Path, _: object) -> Path:
    path = dicom(tmp / "badtag.dcm", np.full((16, 16), 9, np.uint8))
    data = path.read_bytes()
    marker = b"\x28\x00\x11\x00US\x02\x00"  # (0028,0011) Columns, US, length 2
    return _patched(path, data, marker, b"\x28\x00\x11\x00US\x04\x00")  # length 4: tags after it shift


def dicom_huge_rows(tmp: Path, _: object) -> Path:
    return dicom(tmp / "big.dcm", None, rows=60_000, columns=60_000, PixelData=b"\x00" * 64)


def _patched(path: Path, data: bytes, old: bytes, new: bytes) -> Path:
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    return path


# ------------------------------------------------------------------------------ slides


def empty_patch_folder(tmp: Path, _: object) -> Callable[[], object]:
    from radiopath.io.slides import probe_cytology

    (tmp / "patches").mkdir()
    (tmp / "patches" / "README.txt").write_text("patches go here")
    return lambda: probe_cytology(tmp / "patches")


def undecodable_patch(tmp: Path, _: object) -> str:
    for i in range(3):
        noise_png(tmp / "cyto" / f"patch_{i}.png", 10 + i)
    bad = tmp / "cyto" / "patch_1.png"
    bad.write_bytes(bad.read_bytes()[:120])
    return "cyto"


def image_slide_without_mpp(tmp: Path, _: object) -> Callable[[], object]:
    from radiopath.slides.reader import open_slide

    path = png_header_only(tmp / "slide.png", 20_000, 20_000)  # would be 400 MP if decoded
    return lambda: open_slide(path)


def bomb_in_folder(tmp: Path) -> str:
    png_header_only(tmp / "us" / "bomb.png", 40_000, 40_000)
    return "us/bomb.png"


def slide_png(tmp: Path) -> str:
    noise_png(tmp / "slide.png", 5)  # no resolution tag
    return "slide.png"


def mask_png(empty: bool) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        mask = np.zeros((40, 48), np.uint8)
        if not empty:
            mask[5:20, 5:20] = 255
        Image.fromarray(mask).save(tmp / "us" / "mask.png")
        return "us/mask.png"

    return make


# ------------------------------------------------------------------------------ file system


def output_is_a_file(tmp: Path, _: object) -> Callable[[], object]:
    (tmp / "out").write_text("my notes")

    def build() -> None:
        with atomic_dir(tmp / "out", overwrite=True) as d:
            (d / "x.csv").write_text("a")

    return build


def parent_is_a_file(tmp: Path, _: object) -> Callable[[], object]:
    (tmp / "runs").write_text("not a folder")
    return lambda: write_text(tmp / "runs" / "study1" / "metrics.json", "{}")


def output_is_a_folder(tmp: Path, _: object) -> Callable[[], object]:
    (tmp / "report.html").mkdir()
    return lambda: write_text(tmp / "report.html", "<html/>")


def read_only(tmp: Path, mp: pytest.MonkeyPatch) -> Callable[[], object]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp / "x"))

    mp.setattr(tempfile, "mkstemp", refuse)
    return lambda: write_text(tmp / "metrics.json", "{}")


def no_permission(tmp: Path, mp: pytest.MonkeyPatch) -> Callable[[], object]:
    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    mp.setattr(os, "replace", refuse)
    return lambda: write_text(tmp / "metrics.json", "{}")


def disk_full(tmp: Path, _: object) -> Callable[[], object]:
    def write() -> None:
        with atomic_open(tmp / "predictions.csv") as fh:
            fh.write("patient_id,prob\n")
            raise OSError(errno.ENOSPC, "No space left on device")

    return write


def disk_full_at_fsync(tmp: Path, mp: pytest.MonkeyPatch) -> Callable[[], object]:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(os, "fsync", full)

    def write() -> None:
        with atomic_path(tmp / "table.parquet") as t:
            t.write_bytes(b"PAR1")

    return write


def disk_full_building_a_folder(tmp: Path, _: object) -> Callable[[], object]:
    (tmp / "tables").mkdir()
    (tmp / "tables" / "old.csv").write_text("previous results")

    def build() -> None:
        with atomic_dir(tmp / "tables", overwrite=True) as d:
            (d / "a.csv").write_text("a")
            raise OSError(errno.ENOSPC, "No space left on device")

    return build


# ------------------------------------------------------------------------------ checks


def _levels_at_least(n: int) -> Callable[[np.ndarray], None]:
    def check(arr: np.ndarray) -> None:
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
        assert len(np.unique(arr)) >= n, f"only {len(np.unique(arr))} grey levels kept"

    return check


def _colour(rgb: tuple[int, int, int], tol: int = 12) -> Callable[[np.ndarray], None]:
    def check(arr: np.ndarray) -> None:
        assert arr.shape[2] == 3 and np.abs(arr[0, 0].astype(int) - rgb).max() <= tol, arr[0, 0]

    return check


def _no_masks(report: Any) -> None:
    assert report.table["us_1_mask"].isna().all(), "an ignored empty mask must not reach the cohort table"


def _report_ok(report: Any) -> None:
    assert report.ok, [str(p) for p in report.errors]
    assert set(report.table["center"]) <= {"A", "B", "Zürich", "Hôpital Nord"}


# ------------------------------------------------------------------------------ the corpus

_V = {"n_folds": 2}
_M = ManifestError
_I = ImageReadError

CASES: tuple[Case, ...] = (
    # manifests
    Case(
        "manifest/semicolon",
        "validate",
        semicolon,
        severity="warning",
        fragment="semicolon-separated",
        check=_report_ok,
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/tab",
        "validate",
        tab_separated,
        severity="warning",
        fragment="tab-separated",
        check=_report_ok,
        options=_V,
    ),
    Case(
        "manifest/pipe",
        "validate",
        pipe_separated,
        severity="warning",
        fragment="pipe-separated",
        check=_report_ok,
        options=_V,
    ),
    Case("manifest/utf8-bom", "validate", utf8_bom, check=_report_ok, options=_V),
    Case(
        "manifest/latin-1",
        "validate",
        latin1,
        severity="warning",
        fragment="not UTF-8",
        check=_report_ok,
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/utf-16",
        "validate",
        utf16,
        severity="warning",
        fragment="UTF-16",
        check=_report_ok,
        options=_V,
    ),
    Case(
        "manifest/duplicate-ids",
        "validate",
        duplicate_ids,
        severity="error",
        fragment="duplicate patient_id 'P001'",
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/nan-ids",
        "validate",
        nan_ids,
        severity="error",
        fragment="reads as a missing value",
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/blank-id",
        "validate",
        blank_id,
        severity="error",
        fragment="patient_id is empty",
        options=_V,
    ),
    Case("manifest/bad-label", "validate", bad_label, severity="error", fragment="lnm is 'yes'", options=_V),
    Case(
        "manifest/bad-cohort",
        "validate",
        bad_cohort,
        severity="error",
        fragment="write 'development'",
        options=_V,
    ),
    Case(
        "manifest/box-three-numbers",
        "validate",
        _box("1,2,3"),
        severity="error",
        fragment="four numbers",
        options=_V,
    ),
    Case(
        "manifest/box-words",
        "validate",
        _box("left,top,right,bottom"),
        severity="error",
        fragment="not a number",
        options=_V,
    ),
    Case(
        "manifest/box-infinite",
        "validate",
        _box("inf,0,5,5"),
        severity="error",
        fragment="not a finite number",
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/box-huge",
        "validate",
        _box("0,0,1e40,5"),
        severity="error",
        fragment="larger than any image",
        options=_V,
    ),
    Case(
        "manifest/box-inverted",
        "validate",
        _box("30,30,2,2"),
        severity="error",
        fragment="is empty",
        options=_V,
    ),
    Case(
        "manifest/missing-column",
        "validate",
        missing_column,
        severity="error",
        fragment="rename column 'LNM status' to 'lnm'",
        options=_V,
    ),
    Case(
        "manifest/blank-and-comment-lines",
        "validate",
        blank_and_comment_lines,
        severity="error",
        fragment="row 2 (line 7), column lnm",
        options=_V,
        cli=True,
    ),
    Case("manifest/excel-as-csv", "validate", excel_as_csv, raises=_M, fragment="Excel workbook", cli=True),
    Case(
        "manifest/empty-file", "validate", empty_file, raises=_M, fragment="the manifest is empty", cli=True
    ),
    Case("manifest/header-only", "validate", header_only, severity="error", fragment="no patient rows"),
    Case(
        "manifest/too-many-cells",
        "validate",
        too_many_cells,
        severity="error",
        fragment="row 2 (line 3): row has 9 cells but the header has 7",
        options=_V,
    ),
    Case(
        "manifest/duplicate-column",
        "validate",
        duplicate_column,
        severity="error",
        fragment="column 'center' appears more than once",
        options=_V,
    ),
    Case("manifest/binary-as-csv", "validate", binary_as_csv, raises=_M, fragment="binary data"),
    Case(
        "manifest/damaged-parquet",
        "validate",
        damaged_parquet,
        raises=_M,
        fragment="cannot be parsed as Parquet",
    ),
    Case(
        "manifest/windows-path", "validate", windows_path, severity="error", fragment="not '\\'", options=_V
    ),
    Case(
        "manifest/markup-in-cells",
        "validate",
        markup_in_cells,
        severity="error",
        fragment="lnm is '[/red]'",
        options=_V,
        cli=True,
    ),
    Case(
        "manifest/empty-mask",
        "validate",
        _manifest_with("us_1_mask", mask_png(True)),
        severity="error",
        fragment="no foreground pixels",
        options=_V,
    ),
    Case(
        "manifest/empty-mask-ignored",
        "validate",
        _manifest_with("us_1_mask", mask_png(True)),
        severity="warning",
        fragment="treated as no mask",
        check=lambda r: _report_ok(r) or _no_masks(r),
        options={**_V, "empty_mask": "ignore"},
    ),
    Case(
        "manifest/image-too-large",
        "validate",
        _manifest_with("us_2", bomb_in_folder),
        severity="error",
        fragment="exceeds the limit",
        options=_V,
        cli=True,
    ),
    # images
    Case("image/truncated-png", "read", truncated_png, raises=_I, fragment="truncated or corrupt PNG"),
    Case("image/truncated-jpeg", "read", truncated_jpeg, raises=_I, fragment="truncated or corrupt JPEG"),
    Case("image/zero-bytes", "read", zero_bytes, raises=_I, fragment="file is empty (0 bytes)"),
    Case("image/text-renamed-png", "read", text_as_png, raises=_I, fragment="not a recognised image format"),
    Case("image/png-magic-then-garbage", "read", png_magic_then_garbage, raises=_I, fragment="g.png"),
    Case("image/12-bit-grey-png", "read", twelve_bit_png, check=_levels_at_least(250)),
    Case("image/12-bit-colour-png", "read", twelve_bit_colour_png, check=_levels_at_least(250)),
    Case("image/16-bit-rgb-tiff", "read", sixteen_bit_rgb_tiff, check=_levels_at_least(200)),
    Case(
        "image/huge-png-header",
        "read",
        huge_png_header,
        raises=ImageTooLargeError,
        fragment="RADIOPATH_MAX_IMAGE_PIXELS",
    ),
    Case(
        "image/huge-jpeg-header",
        "read",
        huge_jpeg_header,
        raises=ImageTooLargeError,
        fragment="60000x60000 px",
    ),
    Case(
        "image/huge-tiff-header",
        "read",
        huge_tiff_header,
        raises=ImageTooLargeError,
        fragment="12000x12000 px",
    ),
    Case("image/cmyk-jpeg", "read", cmyk_jpeg, check=_colour((255, 0, 0))),
    Case("image/palette-with-transparency", "read", palette_png, check=_colour((0, 0, 200), 0)),
    Case("image/grey-alpha-png", "read", grey_alpha_png, check=_colour((90, 90, 90), 0)),
    Case("image/animated-gif", "read", animated_gif, check=_colour((10, 10, 10), 0)),
    Case(
        "image/animated-gif-frame-out-of-range",
        "read",
        animated_gif,
        raises=_I,
        fragment="frame 7 requested",
        options={"frame": 7},
    ),
    # DICOM
    Case("dicom/no-pixel-data", "read", dicom_without_pixels, raises=_I, fragment="no pixel data"),
    Case("dicom/truncated", "read", dicom_truncated, raises=_I, fragment="cut.dcm"),
    Case("dicom/text-renamed-dcm", "read", text_as_dicom, raises=_I, fragment="not a DICOM file"),
    Case(
        "dicom/wrong-transfer-syntax",
        "read",
        dicom_wrong_transfer_syntax,
        raises=_I,
        fragment="transfer syntax",
    ),
    Case("dicom/damaged-tag", "read", dicom_bad_tag, raises=_I, fragment="badtag.dcm"),
    Case(
        "dicom/huge-rows-columns", "read", dicom_huge_rows, raises=ImageTooLargeError, fragment="60000x60000"
    ),
    # slides and patch folders
    Case(
        "slides/empty-patch-folder",
        "call",
        empty_patch_folder,
        raises=_I,
        fragment="folder holds no patch images",
    ),
    Case(
        "slides/undecodable-patch",
        "validate",
        _manifest_with("cytology", lambda t: undecodable_patch(t, None)),
        severity="error",
        fragment="patch patch_1.png of folder cyto",
        options=_V,
        cli=True,
    ),
    Case(
        "slides/image-without-mpp",
        "call",
        image_slide_without_mpp,
        raises=_I,
        fragment="records no physical resolution",
    ),
    Case(
        "slides/image-without-mpp-in-validate",
        "validate",
        _manifest_with("cytology", slide_png),
        severity="warning",
        fragment="tiling will refuse it",
        options=_V,
    ),
    # file system
    Case(
        "fs/output-folder-is-a-file",
        "call",
        output_is_a_file,
        raises=OutputWriteError,
        fragment="a file of that name exists",
        output="out",
    ),
    Case(
        "fs/parent-is-a-file",
        "call",
        parent_is_a_file,
        raises=OutputWriteError,
        fragment="runs is a file, not a folder",
        output="runs/study1/metrics.json",
    ),
    Case(
        "fs/output-is-a-folder",
        "call",
        output_is_a_folder,
        raises=OutputWriteError,
        fragment="a folder of that name exists",
        output="report.html",
    ),
    Case(
        "fs/read-only",
        "call",
        read_only,
        raises=OutputWriteError,
        fragment="read-only",
        output="metrics.json",
    ),
    Case(
        "fs/permission-denied",
        "call",
        no_permission,
        raises=OutputWriteError,
        fragment="permission denied",
        output="metrics.json",
    ),
    Case(
        "fs/disk-full",
        "call",
        disk_full,
        raises=OutputWriteError,
        fragment="no space left",
        output="predictions.csv",
    ),
    Case(
        "fs/disk-full-at-fsync",
        "call",
        disk_full_at_fsync,
        raises=OutputWriteError,
        fragment="no space left",
        output="table.parquet",
    ),
    Case(
        "fs/disk-full-building-a-folder",
        "call",
        disk_full_building_a_folder,
        raises=OutputWriteError,
        fragment="no space left",
        output="tables",
    ),
)
