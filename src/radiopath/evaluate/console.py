"""Terminal summary of an evaluation (for ``radiopath evaluate``): the main numbers at a glance."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from radiopath.evaluate.results import Evaluation, format_ci

_SHOWN = ("auc", "sensitivity", "specificity", "brier", "cal_slope")


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def print_evaluation(console: Console, ev: Evaluation) -> None:
    """Main table (AUC, sensitivity, specificity, Brier, calibration slope) and the comparisons."""
    m = ev.metrics[ev.metrics["scope"] == "main"]
    if "primary" in m.columns:
        m = m[m["primary"].astype(bool)]
    t = Table(
        title="Performance: external at the frozen thresholds, internal at nested thresholds "
        "(all CIs: RUN/tables/table_main.csv)",
        title_justify="left",
    )
    headers = ("cohort", "model", "n", "LNM", "AUC (95% CI)", "sens", "spec", "Brier", "cal slope")
    for col in headers:
        t.add_column(col, justify="left" if col in ("cohort", "model") else "right", no_wrap=True)
    for (label, model), sub in m.groupby(["cohort_label", "model"], sort=False):
        vals = {r.metric: r for r in sub.itertuples()}
        auc = vals.get("auc")
        cells = [format_ci(auc.value, auc.ci_low, auc.ci_high) if auc is not None else "–"]
        cells += [f"{vals[k].value:.3f}" if k in vals else "–" for k in _SHOWN[1:]]
        first = sub.iloc[0]
        t.add_row(
            str(label).split(" (")[0],
            str(model),
            str(int(first["n"])),
            str(int(first["n_pos"])),
            *cells,
            style="bold" if str(model).startswith("fusion") else "",
        )
    console.print(t)
    if not ev.comparisons.empty:
        c = Table(
            title="Paired comparisons (DeLong for AUC, McNemar for accuracy; Holm-adjusted p)",
            title_justify="left",
        )
        for col in ("cohort", "A", "B", "ΔAUC", "95% CI", "DeLong p", "Holm", "McNemar p"):
            c.add_column(col, justify="left" if col in ("cohort", "A", "B") else "right", no_wrap=True)
        for r in ev.comparisons.itertuples():
            c.add_row(
                str(r.cohort_label).split(" (")[0],
                str(r.model_a),
                str(r.model_b),
                f"{r.auc_diff:+.3f}",
                f"{r.diff_ci_low:+.3f}, {r.diff_ci_high:+.3f}",
                _p(r.delong_p),
                _p(r.delong_p_holm),
                _p(r.mcnemar_p),
            )
        console.print(c)
    for note in ev.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
