"""Rich terminal renderings shared by CLI verbs: problem lists and cohort summaries."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from radiopath.cohort.problems import Problem
from radiopath.cohort.summary import cohort_summary
from radiopath.io.atomic import atomic_open


def progress_bar(console: Console) -> Progress:
    """The one progress-bar style of every verb: description, bar, count, time remaining."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


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
    """Patients, LNM prevalence and modality availability per cohort and center (fits 80 columns)."""
    s = cohort_summary(table)
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="prev. = LNM+ / labelled; ROI = a nodule mask or box for at least one view",
        caption_justify="left",
    )
    t.add_column("cohort / center", justify="left", overflow="fold", max_width=28)
    for col in ("n", "LNM+", "labelled", "prev.", "US 1", "US 2", "cyto", "ROI"):
        t.add_column(col, justify="right", no_wrap=True)
    current = None
    for r in s.itertuples():
        if r.cohort != current and r.cohort != "(all)":
            t.add_row(f"[bold]{r.cohort}[/]")
            current = r.cohort
        name = f"  {r.center}" if r.cohort != "(all)" else "all patients"
        bold = "bold" if "(all)" in (r.center, r.cohort) else ""
        if r.center == "(all)" and r.cohort != "(all)":
            name = f"  all {r.cohort}"
        prev = "-" if r.labelled == 0 else f"{r.prevalence:.1%}"
        t.add_row(
            name,
            str(r.patients),
            str(r.lnm_pos),
            str(r.labelled),
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
