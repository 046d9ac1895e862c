"""read_image: every format to RGB uint8, and a clear error naming the file for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiopath.errors import ImageReadError
from radiopath.io.images import image_size, read_image, sniff_format
from support import real_path


def ddti_images() -> list[Path]:
    return sorted(real_path("ddti_thyroid_us", "images").glob("*.png"))


def test_every_ddti_image_reads_as_gray_replicated_rgb() -> None:
    paths = ddti_images()
    assert len(paths) == 89
    for p in paths:
        arr = read_image(p)
        assert arr.dtype == np.uint8 and arr.shape == (300, 300, 3), p
        assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ref = np.asarray(Image.open(p).convert("L"))
        assert np.array_equal(arr[..., 0], ref)


def test_ddti_gif_masks_read_and_are_binary() -> None:
    masks = sorted(real_path("ddti_thyroid_us", "masks").glob("*.gif"))
    assert masks
    arr = read_image(masks[0])
    assert arr.shape == (300, 300, 3)
    assert set(np.unique(arr)) <= {0, 255} and arr.max() == 255


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("JPEG", ".jpg")])
def test_formats_round_trip(tmp_path: Path, fmt: str, suffix: str) -> None:
    src = np.asarray(Image.open(ddti_images()[0]).convert("RGB"))
    path = tmp_path / f"img{suffix}"
    Image.fromarray(src).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    arr = read_image(path)
    assert arr.shape == src.shape and arr.dtype == np.uint8
    if fmt == "JPEG":
        assert np.abs(arr.astype(int) - src).mean() < 3.0
    else:
        assert np.array_equal(arr, src)


def test_format_is_sniffed_from_content_not_name(tmp_path: Path) -> None:
    src = real_path("ddti_thyroid_us", "images")
    jpeg_named_png = tmp_path / "really_a_jpeg.png"
    Image.open(next(src.glob("*.png"))).convert("RGB").save(jpeg_named_png, format="JPEG")
    assert sniff_format(jpeg_named_png) == "JPEG"
    assert read_image(jpeg_named_png).shape == (300, 300, 3)


def test_sixteen_bit_png_is_scaled_by_bit_depth(tmp_path: Path) -> None:
    ramp = np.arange(256, dtype=np.uint16)[None, :].repeat(4, 0) * 257  # 0..65535
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    arr = read_image(path)
    assert arr.dtype == np.uint8
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255 and abs(int(arr[0, 128, 0]) - 128) <= 1


def test_palette_and_alpha_images_become_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]
    Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0, 0].tolist() == [200, 0, 0]


def test_image_size_without_decoding() -> None:
    assert image_size(ddti_images()[0]) == (300, 300)
    assert image_size(real_path("dicom_us", "examples_palette.dcm")) == (800, 350)


# --- bad input: every case names the file ---------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = ddti_images()[0]
    data = good.read_bytes()
    files = {
        "empty": tmp_path / "empty.png",
        "text": tmp_path / "notes.png",
        "truncated_png": tmp_path / "truncated.png",
        "truncated_jpeg": tmp_path / "truncated.jpg",
        "garbage_after_magic": tmp_path / "garbage.png",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("patient notes, not an image\n")
    files["truncated_png"].write_bytes(data[: len(data) // 2])
    jpeg = tmp_path / "full.jpg"
    Image.open(good).convert("RGB").save(jpeg, quality=90)
    files["truncated_jpeg"].write_bytes(jpeg.read_bytes()[:600])
    files["garbage_after_magic"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return files


@pytest.mark.parametrize("case", ["empty", "text", "truncated_png", "truncated_jpeg", "garbage_after_magic"])
def test_bad_files_give_a_clear_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert info.value.path == path


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_truncated_dicom_is_a_clear_error(tmp_path: Path) -> None:
    src = real_path("dicom_us", "examples_rgb_color.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(ImageReadError) as info:
        read_image(cut)
    assert "cut.dcm" in str(info.value)


def test_unreadable_file_names_the_file_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import radiopath.io.images as images

    path = tmp_path / "locked.png"
    shutil.copy(ddti_images()[0], path)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", denied, raising=False)  # as root, chmod 0 would not stop us
    with pytest.raises(ImageReadError, match=r"locked\.png: cannot be opened \(Permission denied\)"):
        read_image(path)
