"""``radiopath demo``: the whole study on a synthetic cohort, as far as the pipeline reaches.

Today: synthesise a three-center cohort (or reuse the one already in ``OUT/cohort`` when it
was made with the same options), validate it, print its summary and the oracle AUCs — the
best any model could reach — so later stages have a target to be judged against.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from radiopath.cohort import Cohort
from radiopath.display import print_summary
from radiopath.synth import SynthConfig, oracle_auc
from radiopath.synth.cohort import SynthResult, synthesize


def prepare_cohort(folder: Path, cfg: SynthConfig, console: Console | None = None) -> Path:
    """Synthesise ``cfg`` into ``folder``, or reuse it when ``synth.yaml`` there matches ``cfg``."""
    manifest = folder / "manifest.csv"
    done = folder / "synth.yaml"
    if manifest.is_file() and done.is_file():
        previous = SynthConfig.from_yaml(done)
        if previous.model_dump(exclude={"workers"}) == cfg.model_dump(exclude={"workers"}):
            if console:
                console.print(f"reusing the synthetic cohort in {folder}")
            return manifest
    result: SynthResult = synthesize(folder, cfg, overwrite=True)
    if console:
        console.print(f"synthesised {result.patients} patients in {result.seconds:.1f} s → {folder}")
    return result.manifest


def oracle_table(truth: pd.DataFrame) -> pd.DataFrame:
    """Oracle AUC per modality set for the development cohort, each external center and all external."""
    groups = {"internal (development)": truth["cohort"] == "development"}
    for center in sorted(truth.loc[truth["cohort"] == "external", "center"].unique()):
        groups[f"external: {center}"] = truth["center"] == center
    groups["external (all)"] = truth["cohort"] == "external"
    rows = []
    for name, mask in groups.items():
        m = mask.to_numpy()
        if not m.any():
            continue
        rows.append(
            {
                "cohort": name,
                "patients": int(m.sum()),
                "ultrasound": oracle_auc(truth, ["us"], m),
                "cytology": oracle_auc(truth, ["cytology"], m),
                "ultrasound+cytology": oracle_auc(truth, ["us", "cytology"], m),
                "all (with clinical)": oracle_auc(truth, ["us", "cytology", "clinical"], m),
            }
        )
    return pd.DataFrame(rows)


def run_demo(
    out: str | Path, patients: int = 300, seed: int = 0, console: Console | None = None
) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths it made."""
    console = console or Console()
    out = Path(out)
    cfg = SynthConfig(patients=patients, seed=seed)
    manifest = prepare_cohort(out / "cohort", cfg, console)
    cohort = Cohort.from_manifest(manifest)
    print_summary(console, cohort.table, title=f"Synthetic cohort ({manifest})")
    truth = pd.read_csv(out / "cohort" / "truth.csv")
    oracle = oracle_table(truth)
    t = Table(title="Oracle AUC (the best any model could reach with these inputs)", title_justify="left")
    for col in oracle.columns:
        t.add_column(col, justify="left" if col == "cohort" else "right")
    for r in oracle.itertuples(index=False):
        t.add_row(r[0], str(r[1]), *(f"{v:.3f}" for v in r[2:]))
    console.print(t)
    made = {
        "manifest": manifest,
        "truth": out / "cohort" / "truth.csv",
        "contact_sheet": out / "cohort" / "contact_sheet.png",
    }
    from radiopath.report.finish import evaluate_and_report, latest_run

    run = latest_run(out)  # the training stage's run folder, once the demo trains one
    if run is not None:
        made.update(evaluate_and_report(run, console))
    console.print("[bold]made:[/]")
    for name, path in made.items():
        console.print(f"  {name:<14} {path}")
    if run is None:
        console.print("[dim]Training, evaluation and the report arrive with the model and report stages.[/]")
    return made
