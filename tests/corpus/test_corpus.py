"""Every kind of bad input in the corpus gets a RadiopathError (or a located problem) naming
the file, row or option and the fix — never a traceback — and leaves nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from corpus.builders import write_manifest
from corpus.cases import CASES, Case
from radiopath.cli import app
from radiopath.cohort import validate_manifest
from radiopath.io.images import read_image

runner = CliRunner()
CLI_CASES = [c for c in CASES if c.cli]


def _snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root``: (is a folder, size, modification time)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (
                path.is_dir(),
                st.st_size if not path.is_dir() else 0,
                st.st_mtime_ns,
            )
    return out


def _drive(case: Case, target: Any) -> Any:
    if case.drive == "validate":
        return validate_manifest(target, **case.options)
    if case.drive == "read":
        return read_image(target, **case.options)
    return target()


def test_the_corpus_covers_every_area_with_25_kinds_or_more() -> None:
    kinds = [c.kind for c in CASES]
    assert len(kinds) == len(set(kinds)) >= 25
    assert {k.split("/")[0] for k in kinds} == {"manifest", "image", "dicom", "slides", "fs"}


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = case.make(tmp_path, monkeypatch)
    before = _snapshot(tmp_path)
    if case.raises is not None:
        with pytest.raises(case.raises) as info:
            _drive(case, target)
        message = str(info.value)
        assert case.fragment in message, message
        named = Path(str(target)).name if case.drive != "call" else Path(case.output or "").name
        assert not named or named in message, f"the message does not name {named!r}: {message}"
        assert ";" in message, f"no fix in: {message}"  # every message is 'what; fix'
    else:
        result = _drive(case, target)
        if case.severity is not None:
            hits = [p for p in result.problems if p.severity == case.severity and case.fragment in str(p)]
            assert hits, "\n".join(map(str, result.problems))
            assert all(p.fix for p in result.problems)
        if case.check is not None:
            case.check(result)
    monkeypatch.undo()
    after = _snapshot(tmp_path)
    assert not [p for p in after if ".partial" in p or ".old-" in p], sorted(after)
    assert set(after) == set(before), f"new files: {sorted(set(after) - set(before))}"
    if case.output is not None:  # the output is absent, or exactly as it was
        touched = {p: v for p, v in after.items() if p == case.output or p.startswith(case.output + os.sep)}
        assert touched == {p: before[p] for p in touched}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.kind for c in CLI_CASES])
def test_bad_input_through_radiopath_validate(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = case.make(tmp_path, monkeypatch)
    result = runner.invoke(app, ["validate", str(manifest), "--folds", "2"])
    expected = 2 if case.raises is not None or case.severity == "error" else 0
    assert result.exit_code == expected, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert case.fragment in result.output, result.output


@pytest.mark.parametrize(
    "where", ["problems-csv-under-a-file", "problems-csv-is-a-folder", "preview-is-a-file"]
)
def test_unwritable_outputs_of_radiopath_validate(tmp_path: Path, where: str) -> None:
    manifest = write_manifest(tmp_path)
    (tmp_path / "taken").write_text("a file, not a folder")
    (tmp_path / "folder.csv").mkdir()
    option = {
        "problems-csv-under-a-file": ["--problems-csv", str(tmp_path / "taken" / "problems.csv")],
        "problems-csv-is-a-folder": ["--problems-csv", str(tmp_path / "folder.csv")],
        "preview-is-a-file": ["--preview", str(tmp_path / "taken")],
    }[where]
    before = _snapshot(tmp_path)
    result = runner.invoke(app, ["validate", str(manifest), "--folds", "2", *option])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cannot write output" in result.output
    assert ("taken is a file, not a folder" in result.output) or (
        "a folder of that name exists" in result.output
    )
    assert _snapshot(tmp_path) == before
