"""Rich terminal renderings shared by CLI verbs: problem lists and cohort summaries."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from radiopath.cohort.problems import Problem
from radiopath.cohort.summary import cohort_summary
from radiopath.io.atomic import atomic_open


def print_problems(console: Console, problems: Sequence[Problem]) -> None:
    """Every problem, one per line: severity, where, what, fix."""
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        console.print(
            f"[{colour}]{p.severity}[/] [bold]{p.where}[/]: {p.message}\n    [dim]fix:[/] {p.fix}",
            highlight=False,
            soft_wrap=True,
        )


def write_problems_csv(path: str | Path, problems: Sequence[Problem]) -> None:
    """All problems as CSV (severity, row, line, column, message, fix), written atomically."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["severity", "row", "line", "column", "message", "fix"])
        for p in problems:
            w.writerow([p.severity, p.row or "", p.line or "", p.column or "", p.message, p.fix])


def summary_table(table: pd.DataFrame, title: str = "Cohort") -> Table:
    """Patients, LNM prevalence and modality availability per cohort and center."""
    s = cohort_summary(table)
    t = Table(title=title, title_justify="left")
    for col, justify in (
        ("cohort", "left"),
        ("center", "left"),
        ("patients", "right"),
        ("LNM+ / labelled", "right"),
        ("prevalence", "right"),
        ("us_1", "right"),
        ("us_2", "right"),
        ("cytology", "right"),
        ("region", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in s.itertuples():
        bold = "bold" if "(all)" in (r.center, r.cohort) else ""
        prev = "-" if r.labelled == 0 else f"{r.prevalence:.1%}"
        t.add_row(
            r.cohort,
            r.center,
            str(r.patients),
            f"{r.lnm_pos} / {r.labelled}",
            prev,
            str(r.us_1),
            str(r.us_2),
            str(r.cytology),
            str(r.region),
            style=bold,
        )
    return t


def print_summary(console: Console, table: pd.DataFrame, title: str = "Cohort") -> None:
    console.print(summary_table(table, title))
