"""Result tables stay readable where they are logged: nothing cut to 80 columns, no markup surprises."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from radiopath.cohort.problems import Problem
from radiopath.display import UNBOUNDED_WIDTH, make_console, print_problems, print_summary

LONG = "Internationales Universitätsklinikum für Schilddrüsenchirurgie Nord"


def _table() -> pd.DataFrame:
    rows = []
    for i in range(7):
        rows.append(
            {
                "patient_id": f"P{i}",
                "center": LONG if i < 4 else "B",
                "cohort": "development" if i < 4 else "external",
                "lnm": i % 2 if i != 5 else pd.NA,
                "us_1": f"/x/{i}.png",
                "us_2": None,
                "us_1_mask": None,
                "us_2_mask": None,
                "cytology": None,
                "us_1_box": (1, 2, 3, 4) if i == 0 else None,
                "us_2_box": None,
            }
        )
    table = pd.DataFrame(rows)
    table["lnm"] = table["lnm"].astype("Int8")
    return table


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_logged_output_is_full_width() -> None:
    out = _Pipe()
    console = make_console(file=out)
    assert console.width == UNBOUNDED_WIDTH and not console.is_terminal
    print_summary(console, _table())
    text = out.getvalue()
    assert LONG in text and "…" not in text and "50.0%" in text
    assert "\x1b[" not in text  # no colour codes in a log file


def test_a_terminal_keeps_its_width() -> None:
    console = make_console(file=_Terminal(), width=None)
    assert console.width != UNBOUNDED_WIDTH


def test_a_narrow_console_folds_names_but_never_cuts_a_cell() -> None:
    """Regression: rich cut the summary to 80 columns ('Inter…', '0.…') and dropped columns."""
    for width in (80, 60, 40):
        out = io.StringIO()
        print_summary(Console(file=out, width=width), _table())
        text = out.getvalue()
        assert "…" not in text, text
        header = next(line for line in text.splitlines() if "labelled" in line)
        assert header.split()[-5:] == ["prev.", "US", "1", "US", "2", "cyto", "ROI"][-5:], header
        for number in ("50.0%", "33.3%"):
            assert number in text
        rest = iter("".join(text.split()))  # every letter of the name, in order (folded, not cut)
        assert all(ch in rest for ch in LONG.replace(" ", "")), text


def test_problem_text_is_printed_as_written_not_as_markup() -> None:
    out = _Pipe()
    problem = Problem("error", "lnm is '[/red]' and id '[bold]x'", "write [0/1]", row=3, column="lnm", line=4)
    print_problems(make_console(file=out), [problem])
    text = out.getvalue()
    assert "lnm is '[/red]' and id '[bold]x'" in text and "write [0/1]" in text
    assert "row 3 (line 4), column lnm" in text
