"""The last step of a study: evaluate the predictions and write the report (used by ``radiopath demo``)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from radiopath.evaluate import evaluate_run
from radiopath.evaluate.console import print_evaluation
from radiopath.report.html import write_report


def latest_run(folder: str | Path) -> Path | None:
    """The most recently written run folder directly under ``folder`` (one holding predictions.parquet)."""
    runs = sorted(Path(folder).glob("*/predictions.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    return runs[0].parent if runs else None


def evaluate_and_report(
    run: str | Path, console: Console | None = None, n_boot: int = 2000
) -> dict[str, Path]:
    """``evaluate_run`` + ``write_report`` on ``run``; prints the summary; returns the paths made."""
    run = Path(run)
    ev = evaluate_run(run, n_boot=n_boot)
    if console is not None:
        print_evaluation(console, ev)
    report = write_report(run, evaluation=ev)
    if console is not None:
        console.print(f"[bold green]report:[/] {report}")
    return {"metrics": run / "metrics.json", "tables": run / "tables", "report": report}
