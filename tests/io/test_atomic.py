"""Atomic writes: complete under the final name, or absent — never half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiopath.io.atomic import atomic_dir, atomic_open, atomic_path, write_text


def test_atomic_open_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind
    with atomic_open(target) as fh:
        fh.write("new")
    assert target.read_text() == "new"


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "table.parquet") as tmp:
        assert tmp.suffix == ".parquet" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "table.parquet").read_bytes() == b"x"


def test_atomic_dir_refuses_a_non_empty_folder_and_cleans_up_on_error(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError), atomic_dir(out):
        pass
    assert (out / "keep.txt").read_text() == "user data"
    with pytest.raises(ValueError), atomic_dir(tmp_path / "new") as tmp:
        (tmp / "partial.csv").write_text("a,b")
        raise ValueError("bad input")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "fresh.txt").write_text("ok")
    assert sorted(p.name for p in out.iterdir()) == ["fresh.txt"]


def test_results_get_normal_permissions_not_private_temp_ones(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.html", "<html></html>")
        with atomic_dir(tmp_path / "figures") as tmp:
            (tmp / "roc.png").write_bytes(b"png")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "figures").stat().st_mode & 0o777 == 0o755
