"""Rich terminal renderings shared by CLI verbs: problem lists and cohort summaries.

Output is often not a terminal: CI logs, ``nohup``, ``radiopath validate ... > log.txt``. Rich
then assumes 80 columns and cuts table cells short ("Inter…", "0.…"), which loses exactly
the numbers a log is kept for. :func:`make_console` gives a console that prints at full
width when the output is not a terminal, and the tables here never truncate a cell (long
text folds onto the next line on a narrow terminal instead).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from radiopath.cohort.problems import Problem
from radiopath.cohort.summary import cohort_summary
from radiopath.io.atomic import atomic_open

#: Width used when the output is not a terminal: wide enough that nothing is ever cut.
UNBOUNDED_WIDTH = 10_000


def make_console(stderr: bool = False, file: IO[str] | None = None, width: int | None = None) -> Console:
    """A rich Console suited to where it prints.

    On a terminal it is rich's usual console (the terminal's width, colours). Anywhere else
    (a file, a pipe, CI logs, ``nohup``) it prints at full width — lines are never wrapped
    or tables cut to 80 columns — and without colour codes.

    Args:
        stderr: print to standard error instead of standard output.
        file: print to this stream instead (its ``isatty()`` decides, like for stdout).
        width: force a width (columns) whatever the output is.
    """
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or odd streams are not terminals
        tty = False
    if width is None and not tty:
        width = UNBOUNDED_WIDTH
    return Console(file=file, stderr=stderr, width=width, soft_wrap=not tty)


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
        where, message, fix = escape(p.where), escape(p.message), escape(p.fix)  # user text is not markup
        console.print(
            f"[{colour}]{p.severity}[/] [bold]{where}[/]: {message}\n    [dim]fix:[/] {fix}",
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
    """Patients, LNM prevalence and modality availability per cohort and center.

    No cell is ever truncated: numbers keep their full width, and on a terminal too narrow
    for a long center name the name folds onto the next line.
    """
    s = cohort_summary(table)
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="prev. = LNM+ / labelled; ROI = a nodule mask or box for at least one view",
        caption_justify="left",
    )
    rows = list(_summary_rows(s))
    t.add_column("cohort / center", justify="left", overflow="fold")
    for k, col in enumerate(("n", "LNM+", "labelled", "prev.", "US 1", "US 2", "cyto", "ROI"), start=1):
        widest = max([len(col), *(len(r[0][k]) for r in rows if len(r[0]) > k)])
        t.add_column(col, justify="right", overflow="fold", min_width=widest)
    for cells, style in rows:
        t.add_row(*cells, style=style)
    return t


def _summary_rows(s: pd.DataFrame):  # type: ignore[no-untyped-def]
    """(cells, style) for each line of the summary table, cohort headings included."""
    current = None
    for r in s.itertuples():
        if r.cohort != current and r.cohort != "(all)":
            yield (f"[bold]{escape(str(r.cohort))}[/]",), ""
            current = r.cohort
        name = f"  {escape(str(r.center))}" if r.cohort != "(all)" else "all patients"
        bold = "bold" if "(all)" in (r.center, r.cohort) else ""
        if r.center == "(all)" and r.cohort != "(all)":
            name = f"  all {escape(str(r.cohort))}"
        prev = "-" if r.labelled == 0 else f"{r.prevalence:.1%}"
        yield (
            (
                name,
                str(r.patients),
                str(r.lnm_pos),
                str(r.labelled),
                prev,
                str(r.us_1),
                str(r.us_2),
                str(r.cytology),
                str(r.region),
            ),
            bold,
        )


def print_summary(console: Console, table: pd.DataFrame, title: str = "Cohort") -> None:
    """Print :func:`summary_table`; wider than a narrow terminal rather than drop a column."""
    print_table(console, summary_table(table, title))


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` whole: when the console is narrower than the table's minimum width, the
    table is printed at that width (the terminal wraps the lines) instead of losing columns."""
    needed = minimum_width(table)
    if needed <= console.width:
        console.print(table)
        return
    saved = getattr(console, "_width", None)  # rich can only narrow a single print; widen the console
    console.width = needed
    try:
        console.print(table)
    finally:
        console._width = saved  # type: ignore[attr-defined]


def minimum_width(table: Table) -> int:
    """Columns a table needs so no cell is cut: each column's ``min_width``, or its longest word."""

    def column(c: Column) -> int:
        words = [w for cell in (c.header, *c.cells) for w in _plain(cell).split()]
        return max(c.min_width or 0, max((len(w) for w in words), default=1))

    padding = 2 * len(table.columns) - (0 if table.pad_edge else 2)
    return sum(column(c) for c in table.columns) + padding + (2 if table.box else 0)


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else ""
