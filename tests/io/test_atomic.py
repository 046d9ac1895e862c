"""Atomic writes: complete under the final name, or absent — never half-written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from radiopath.errors import OutputFolderExistsError, OutputWriteError
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


# --- the operating system says no: a clear error, the temporary file gone, old results kept ---


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.ENAMETOOLONG, "the path is too long"),
    ],
)
def test_write_failures_become_output_write_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    real_replace = os.replace

    def refuse(src: object, dst: object) -> None:
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputWriteError) as info:
        write_text(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert info.value.errno == code and info.value.path == target
    assert str(info.value).startswith(f"{target}: cannot write output: {words}")
    assert info.value.fix and info.value.fix in str(info.value)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_input_error_inside_the_block_is_not_called_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_open(tmp_path / "out.csv") as fh:
        fh.write("a")
        open(tmp_path / "elsewhere" / "missing-input.csv")  # noqa: SIM115 - the read an input would do
    assert list(tmp_path.iterdir()) == []


def test_a_failed_folder_swap_puts_the_old_results_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tables"
    with atomic_dir(out) as tmp:
        (tmp / "old.csv").write_text("previous")
    real_replace = os.replace
    calls: list[str] = []

    def second_fails(src: object, dst: object) -> None:
        calls.append(str(dst))
        if len(calls) == 2:  # old results moved aside, then the new folder cannot be moved in
            raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OutputWriteError), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.csv").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["tables"]
    assert (out / "old.csv").read_text() == "previous"


def test_a_folder_that_holds_files_is_refused_with_the_option_named(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(OutputFolderExistsError, match="--overwrite") as info, atomic_dir(tmp_path / "run"):
        pass
    assert isinstance(info.value, FileExistsError)  # callers that catch FileExistsError still do


def test_file_systems_without_fsync_are_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", unsupported)
    write_text(tmp_path / "a.txt", "ok")
    assert (tmp_path / "a.txt").read_text() == "ok"
