"""``radiopath demo``: the whole study on a synthetic cohort, in minutes on a laptop CPU.

Synthesise a three-center cohort (or reuse ``OUT/cohort`` when it was made with the same
options), validate it, extract ResNet-101 features (random weights: nothing is downloaded),
run the protocol for the ultrasound-only, cytology-only and fusion models, explain 36
patients (Grad-CAM, nuclear enrichment against a randomised twin, deletion; pictures of a
dozen), evaluate, write
the report, and print the paper's table beside the oracle AUCs — the best any model could
reach on these data.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from radiopath.cohort import Cohort
from radiopath.display import print_summary
from radiopath.progress import feature_bars
from radiopath.run_config import RunConfig, fast_profile
from radiopath.synth import SynthConfig, oracle_auc
from radiopath.synth.cohort import SynthResult, synthesize
from radiopath.train.run import train_run

#: Patients the demo explains (the checks' sample: about a second each), the first of them
#: drawn in the gallery, and the Grad-CAM layer: ResNet-101's last block sees 112-px tiles as
#: a 4x4 map (28 µm a cell); ``layer3`` gives 7x7 (16 µm, about two nuclei).
EXPLAIN_PATIENTS = 36
EXPLAIN_GALLERY = 12
#: The ultrasound region-deletion check blurs away the top quarter of each view's CAM (one
#: backbone pass per order; the default three fractions triple the check's cost).
EXPLAIN_US_FRACTIONS = (0.25,)
EXPLAIN_LAYER = "body.layer3"


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
    out: str | Path,
    patients: int = 300,
    seed: int = 0,
    console: Console | None = None,
    run_config: RunConfig | None = None,
) -> dict[str, Path]:
    """Synthesise, validate, train every model with the protocol, evaluate and report.

    Reruns reuse the synthetic cohort and the feature cache, and resume an unfinished run.
    ``run_config`` defaults to :func:`radiopath.train.config.fast_profile`.
    """
    console = console or Console()
    start = time.perf_counter()
    out = Path(out)
    manifest = prepare_cohort(out / "cohort", SynthConfig(patients=patients, seed=seed), console)
    cohort = Cohort.from_manifest(manifest)
    print_summary(console, cohort.table, title=f"Synthetic cohort ({manifest})")
    truth = pd.read_csv(out / "cohort" / "truth.csv")
    oracle = oracle_table(truth)
    cfg = run_config or fast_profile()
    cfg.protocol.seed = seed
    cfg.cache_dir = cfg.cache_dir or str(out / "cache")
    run_dir = out / "run"
    resume = (run_dir / "config.yaml").exists()
    if resume:
        saved = RunConfig.from_yaml(run_dir / "config.yaml")
        if saved.model_dump() != cfg.resolved().model_dump() or not (run_dir / "inputs.json").exists():
            shutil.rmtree(run_dir)  # the demo's own folder, made with other options: start over
            resume = False
    console.print(
        f"training {', '.join(cfg.model.models)} ({cfg.model.backbone}, weights "
        f"{cfg.model.weights}, {cfg.train.mode} mode, {cfg.protocol.n_folds}-fold CV)"
    )
    with feature_bars(console) as progress:
        result = train_run(
            manifest, run_dir, cfg, resume=resume, say=console.print, feature_progress=progress
        )
    made = {
        "manifest": manifest,
        "truth": out / "cohort" / "truth.csv",
        "contact_sheet": out / "cohort" / "contact_sheet.png",
        "run": result.run_dir,
        "predictions": result.run_dir / "predictions.parquet",
    }
    from radiopath.explain import explain_run
    from radiopath.report.finish import evaluate_and_report

    layer = EXPLAIN_LAYER if cfg.model.backbone.startswith("resnet") else None  # timm: its last block
    explained = explain_run(
        result.run_dir,
        n=EXPLAIN_PATIENTS,
        gallery=EXPLAIN_GALLERY,
        us_fractions=EXPLAIN_US_FRACTIONS,
        target_layer=layer,
        panels="primary",
        say=console.print,
    )
    made["explain"] = explained.folder
    made.update(evaluate_and_report(result.run_dir, console))
    console.print(paper_table(result.predictions, oracle))
    console.print("[bold]made:[/]")
    for name, path in made.items():
        console.print(f"  {name:<14} {path}")
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return made


def paper_table(predictions: pd.DataFrame, oracle: pd.DataFrame) -> Table:
    """The paper's table: AUC and accuracy at the frozen threshold, internal (out-of-fold)
    and external (fold ensemble), per model — with the oracle AUC for reference."""
    t = Table(
        title="The study's table (AUC, accuracy at the frozen threshold)",
        title_justify="left",
        caption="internal = out-of-fold on the development cohort; external = all external centers",
        caption_justify="left",
    )
    for col in ("model", "internal AUC", "internal acc", "external AUC", "external acc"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for model, sub in predictions.groupby("model", sort=False):
        cells = []
        for cohort in ("development", "external"):
            part = sub[(sub["cohort"] == cohort) & sub["label"].notna()]
            if part["label"].nunique() < 2:
                cells += ["-", "-"]
                continue
            auc = roc_auc_score(part["label"], part["prob"])
            acc = float(((part["prob"] >= part["threshold"]).astype(int) == part["label"]).mean())
            cells += [f"{auc:.3f}", f"{acc:.3f}"]
        t.add_row(str(model), *cells, style="bold" if str(model).startswith("fusion") else "")
    by = oracle.set_index("cohort")
    for name, key in (
        ("oracle ultrasound", "ultrasound"),
        ("oracle cytology", "cytology"),
        ("oracle both", "ultrasound+cytology"),
    ):
        t.add_row(
            f"[dim]{name}[/]",
            f"[dim]{by.loc['internal (development)', key]:.3f}[/]",
            "",
            f"[dim]{by.loc['external (all)', key]:.3f}[/]",
            "",
        )
    return t
