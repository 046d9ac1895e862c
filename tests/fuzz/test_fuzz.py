"""Bounded fuzzing: whatever bytes a user's file holds, the manifest validator and the image
reader either succeed or raise a RadiopathError — never another exception (a traceback).

Deterministic (``derandomize``) and small, so the whole module takes a few seconds in CI.
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from corpus.builders import dicom
from radiopath.cohort import validate_manifest
from radiopath.cohort.schema import parse_box, parse_label
from radiopath.errors import RadiopathError
from radiopath.io.images import image_size, read_image

FUZZ = settings(
    max_examples=40,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.filterwarnings("ignore")  # decoders warn about damaged files; errors are what count


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _valid_images(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (12, 16, 3), np.uint8)
    out: dict[str, bytes] = {}
    for fmt, ext in (("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp")):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        out[ext] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 16).save(buf, format="PNG")  # 16-bit grey
    out[".16.png"] = buf.getvalue()
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb, photometric="rgb")
    out[".tif"] = buf.getvalue()
    out[".dcm"] = dicom(folder / "base.dcm", rgb[..., 0]).read_bytes()
    return out


def _mutated(data: bytes, draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "header"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    buf = bytearray(data)
    if kind == "insert":
        at = draw(st.integers(0, len(buf)))
        return bytes(buf[:at]) + draw(st.binary(min_size=1, max_size=64)) + bytes(buf[at:])
    span = min(len(buf), 64) if kind == "header" else len(buf)  # headers hold sizes and depths
    for _ in range(draw(st.integers(1, 8))):
        buf[draw(st.integers(0, span - 1))] = draw(st.integers(0, 255))
    return bytes(buf)


@st.composite
def damaged_image(draw: st.DrawFn, bases: dict[str, bytes]) -> tuple[str, bytes]:
    ext = draw(st.sampled_from(sorted(bases)))
    return ext, _mutated(bases[ext], draw)


def test_image_reader_only_raises_radiopath_errors(folder: Path) -> None:
    bases = _valid_images(folder)

    @FUZZ
    @given(damaged_image(bases))
    def check(case: tuple[str, bytes]) -> None:
        ext, data = case
        path = folder / ("fuzz." + ext.rsplit(".", 1)[-1])
        path.write_bytes(data)
        for read in (lambda: read_image(path, max_pixels=2_000_000), lambda: image_size(path)):
            try:
                out = read()
            except RadiopathError as exc:
                assert path.name in str(exc)
                continue
            if isinstance(out, np.ndarray):
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3

    check()


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_an_image(folder: Path, data: bytes) -> None:
    for name in ("x.png", "x.dcm", "x.jpg"):
        path = folder / name
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data if name == "x.png" else data)
        with contextlib.suppress(RadiopathError):
            read_image(path, max_pixels=2_000_000)


_CELLS = st.sampled_from(
    ["P1", "P1", "nan", "NA", "", " ", "A", "B", "development", "external", "Development", "0", "1", "1.0",
     "yes", "2", "us/x.png", "../x.png", "/abs/x.png", "us\\x.png", "1,2,3,4", "1;2 3 4", "inf,0,1,1", "a,b",
     '"', '""', "#", "[/]", "[bold]", "\x00", "é", "\ufeff", "\u00a0", "1e999", "-1,-1,2,2", "x" * 300]
)  # fmt: skip
_BOXES = st.sampled_from(
    ["1,2,30,40", "inf,0,1,1", "nan,0,1,1", "0,0,1e999,2", "-1,-1,2,2", "a,b", "3,3,1,1"]
)
_BY_COLUMN = {
    "patient_id": st.sampled_from(["P1", "P2", "p1", "nan", "None", "", "[/]"]),
    "lnm": st.sampled_from(["0", "1", "", "1.0", "yes", "-0", "1e0", "nan"]),
    "cohort": st.sampled_from(["development", "external", "Development", "", "test"]),
    "us_1_box": _BOXES,
    "us_2_box": _BOXES,
}
_NAMES = st.sampled_from(
    ["patient_id", "center", "cohort", "lnm", "us_1", "us_2", "us_1_box", "us_1_mask", "cytology", "clin_age",
     "LNM", "patient_id", "", "Unnamed: 0", "x.1"]
)  # fmt: skip


@st.composite
def manifest_text(draw: st.DrawFn) -> str:
    sep = draw(st.sampled_from([",", ";", "\t", "|", " "]))
    full = ["patient_id", "center", "cohort", "lnm", "us_1", "us_1_box", "us_2", "us_2_box", "cytology"]
    header = full if draw(st.booleans()) else draw(st.lists(_NAMES, min_size=0, max_size=9))
    lines = [sep.join(header)]
    for _ in range(draw(st.integers(0, 8))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            lines.append("")
        elif choice == 1:
            lines.append("# " + draw(_CELLS))
        else:
            n = draw(st.one_of(st.just(len(header)), st.integers(0, len(header) + 2)))  # mostly full rows
            cells = [draw(st.one_of(_BY_COLUMN.get(c, _CELLS), _CELLS)) for c in [*header, "", ""][:n]]
            if draw(st.booleans()):  # as a spreadsheet writes it (quoted where needed) or as typed
                buf = io.StringIO()
                csv.writer(buf, delimiter=sep, lineterminator="").writerow(cells)
                lines.append(buf.getvalue())
            else:
                lines.append(sep.join(cells))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return end.join(lines) + draw(st.sampled_from(["", end]))


_HEAD = "patient_id,center,cohort,lnm,us_1,us_1_box\n"


@settings(FUZZ, max_examples=150)  # cheap examples; fewer miss the rare odd cell in the right column
@given(manifest_text(), st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
@example(_HEAD + 'P1,A,development,1,x.png,"inf,0,1,1"\n', "utf-8")  # was an OverflowError
@example(_HEAD + "P1,A,development,1," + "x" * 300 + ",\n", "utf-8")  # was an OSError (name too long)
@example(_HEAD + '"P1,A,development\n', "utf-8")  # an unclosed quote
def test_validator_only_raises_radiopath_errors_on_spreadsheet_like_text(
    folder: Path, text: str, encoding: str
) -> None:
    path = folder / "manifest.csv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    try:
        report = validate_manifest(path, check_files=False)
    except RadiopathError as exc:
        assert "manifest.csv" in str(exc)
        return
    assert all(p.fix for p in report.problems)
    assert len(report.table) == len(report.table["row"])


@FUZZ
@given(st.binary(max_size=800), st.sampled_from(["manifest.csv", "manifest.tsv", "manifest.parquet"]))
def test_validator_only_raises_radiopath_errors_on_random_bytes(folder: Path, data: bytes, name: str) -> None:
    path = folder / name
    path.write_bytes(data)
    with contextlib.suppress(RadiopathError):
        validate_manifest(path, check_files=False)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40))
def test_cell_parsers_only_raise_value_errors(text: str) -> None:
    for parse in (parse_box, parse_label):
        with contextlib.suppress(ValueError):
            parse(text)
