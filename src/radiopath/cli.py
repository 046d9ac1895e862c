"""The ``radiopath`` command line: thin wrappers that parse, call the Python API, and print.

Every verb maps to an importable function; nothing here computes anything a user could not
get from the API. Errors derived from :class:`~radiopath.errors.RadiopathError` are printed
as one clean message with exit status 2 — never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from radiopath.errors import RadiopathError

app = typer.Typer(
    name="radiopath",
    help="Multimodal radiopathomics: predict lymph-node metastasis in papillary thyroid carcinoma "
    "from ultrasound images and FNA cytology slides.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """Turn :class:`RadiopathError` into a red message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RadiopathError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from radiopath import __version__

        console.print(f"radiopath {__version__}")
        raise typer.Exit()


@app.command()
@_friendly
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to create (must not exist or be empty).")],
    patients: Annotated[int, typer.Option(help="Number of patients over all centers.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same cohort.")] = 0,
    us_signal: Annotated[
        float, typer.Option(help="Weight of the ultrasound latent in the LNM risk (0 = none).")
    ] = 1.0,
    cytology_signal: Annotated[
        float, typer.Option(help="Weight of the cytology latent in the risk (0 = none).")
    ] = 1.0,
    config: Annotated[
        Path | None, typer.Option(help="YAML file with any SynthConfig option (centers, …).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Processes (0 = one per CPU core).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it already holds files.")] = False,
) -> None:
    """Generate a synthetic multi-center cohort: manifest, ultrasound, slides, truth.csv."""
    from radiopath.synth import SynthConfig

    base = SynthConfig.from_yaml(config).model_dump() if config else {}
    base.update(
        patients=patients, seed=seed, us_signal=us_signal, cytology_signal=cytology_signal, workers=workers
    )
    cfg = SynthConfig.from_dict(base, source=str(config or "options"))
    result = _synthesize_with_progress(out, cfg, overwrite)
    console.print(f"[green]wrote[/] {result.patients} patients to {result.out_dir} in {result.seconds:.1f} s")
    console.print(
        f"  manifest  {result.manifest}\n  truth     {result.truth}\n  contact   {result.contact_sheet}"
    )


def _synthesize_with_progress(out: Path, cfg: Any, overwrite: bool) -> Any:
    from radiopath.display import progress_bar
    from radiopath.synth import synthesize

    with progress_bar(console) as bar:
        task = bar.add_task("synthesising", total=cfg.patients)
        return synthesize(
            out, cfg, overwrite=overwrite, progress=lambda done, total: bar.update(task, completed=done)
        )


@app.command()
@_friendly
def validate(
    manifest: Annotated[Path, typer.Argument(help="Manifest (.csv or .parquet); paths are relative to it.")],
    strict: Annotated[
        bool,
        typer.Option(help="Reject paths that leave the manifest's folder ('..', links, absolute paths)."),
    ] = False,
    check_files: Annotated[bool, typer.Option(help="Decode every image and open every slide.")] = True,
    folds: Annotated[int, typer.Option(help="Cross-validation folds the cohort must support.")] = 5,
    problems_csv: Annotated[Path | None, typer.Option(help="Also write every problem to this CSV.")] = None,
    preview: Annotated[
        Path | None,
        typer.Option(help="Write before/after contact sheets of the ultrasound preprocessing here."),
    ] = None,
    preview_patients: Annotated[int, typer.Option(help="Patients in the preview, spread over centers.")] = 12,
) -> None:
    """Check a manifest and report every problem at once (exit 2 on any error, 0 when clean)."""
    from radiopath.cohort import validate_manifest
    from radiopath.display import print_problems, print_summary

    report = validate_manifest(manifest, strict=strict, check_files=check_files, n_folds=folds)
    print_problems(console, report.problems)
    if problems_csv is not None:
        from radiopath.display import write_problems_csv

        write_problems_csv(problems_csv, report.problems)
    if len(report.table):
        print_summary(console, report.table)
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        console.print(f"[bold red]{n_err} error(s)[/], {n_warn} warning(s) in {manifest}", soft_wrap=True)
        if preview is not None:
            console.print("preview not written: fix the errors first", soft_wrap=True)
        raise typer.Exit(code=2)
    console.print(f"[bold green]ok[/]: {manifest} is valid ({n_warn} warning(s))", soft_wrap=True)
    if preview is not None:
        _write_us_preview(report.table, preview, preview_patients)


def _write_us_preview(table: Any, out: Path, patients: int) -> None:
    from radiopath.ultrasound.preview import write_preview

    result = write_preview(table, out, patients=patients)
    console.print(
        f"preview: {result.views} view(s), {result.marks_removed} with marks removed, "
        f"{result.no_scan_area} without a scan area, {result.errors} unreadable\n"
        f"  sheet  {result.sheet}\n  table  {result.table}",
        soft_wrap=True,
    )


@app.command()
@_friendly
def tile(
    source: Annotated[
        Path, typer.Argument(help="Manifest (.csv/.parquet), or one slide file, image or folder of patches.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; rerun to resume.")],
    config: Annotated[Path | None, typer.Option(help="YAML file with any TilingConfig option.")] = None,
    target_mpp: Annotated[float | None, typer.Option(help="µm per pixel of the tiles (default 0.5).")] = None,
    tile_size: Annotated[int | None, typer.Option(help="Tile side in pixels (default 224).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Tiles kept per slide (default 64).")] = None,
    mpp_table: Annotated[
        Path | None, typer.Option(help="CSV 'slide,mpp' giving the resolution of slides without metadata.")
    ] = None,
    export_patches: Annotated[bool, typer.Option(help="Also write the kept tiles as PNG files.")] = False,
    workers: Annotated[int, typer.Option(help="Slides tiled in parallel (processes).")] = 1,
) -> None:
    """Find the cell-bearing tiles of every slide: tile table, thumbnails, QC flags."""
    from radiopath.slides import TilingConfig, tile_cohort

    base = TilingConfig.from_yaml(config).model_dump() if config else {}
    given = {"target_mpp": target_mpp, "tile_size": tile_size, "top_k": top_k}
    base.update({k: v for k, v in given.items() if v is not None})
    cfg = TilingConfig.from_dict(base, source=str(config or "options"))
    status: dict[str, int] = {}

    def report(i: int, total: int, pid: str, summary: dict[str, Any]) -> None:
        state = "done before" if summary.get("skipped") else summary["status"]
        status[summary["status"]] = status.get(summary["status"], 0) + 1
        colour = {"ok": "green", "empty": "yellow", "error": "red"}[summary["status"]]
        first = summary["message"].splitlines()[0]
        line = f"  [{i}/{total}] {pid}: [{colour}]{state}[/] — {first}"
        console.print(line, highlight=False, soft_wrap=True)

    table = tile_cohort(
        source, out, cfg, mpp_table=mpp_table, export_patches=export_patches, workers=workers, progress=report
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.items()))
    console.print(f"[green]wrote[/] {table} ({counts}; thumbnails in {out / 'slides'})", soft_wrap=True)


@app.command()
@_friendly
def train(
    manifest: Annotated[Path, typer.Argument(help="Validated manifest (.csv or .parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder to create (or to continue with --resume).")
    ],
    config: Annotated[
        Path | None, typer.Option(help="YAML with any RunConfig option (see RUN/config.yaml).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run in OUT where it stopped.")] = False,
    fast: Annotated[
        bool,
        typer.Option(help="Start from the demo's fast profile (112-px inputs, 8 tiles, random weights)."),
    ] = False,
    backbone: Annotated[str | None, typer.Option(help="resnet18|34|50|101|152 or timm:<name>.")] = None,
    weights: Annotated[str | None, typer.Option(help="none | imagenet | PATH to .safetensors/.pth.")] = None,
    mode: Annotated[str | None, typer.Option(help="features (frozen backbone, cached) or finetune.")] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma list, e.g. ultrasound,cytology,fusion_concat.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per fold.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for folds, initialisation and shuffles.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Feature cache folder.")] = None,
) -> None:
    """Run the study protocol (5-fold CV, frozen threshold, external ensemble) for every model."""
    from radiopath.train.config import RunConfig, fast_profile
    from radiopath.train.run import train_run

    base = fast_profile() if fast else RunConfig()
    data = RunConfig.from_yaml(config).model_dump() if config else base.model_dump()
    overrides = {
        ("model", "backbone"): backbone,
        ("model", "weights"): weights,
        ("train", "mode"): mode,
        ("model", "models"): models.split(",") if models else None,
        ("train", "epochs"): epochs,
        ("protocol", "n_folds"): folds,
        ("protocol", "seed"): seed,
        ("train", "device"): device,
    }
    for (section, key), value in overrides.items():
        if value is not None:
            data[section][key] = value
    if cache_dir is not None:
        data["cache_dir"] = str(cache_dir)
    cfg = (
        None
        if (resume and config is None and not any(v is not None for v in overrides.values()))
        else RunConfig.from_dict(data, source=str(config or "options"))
    )
    from radiopath.demo import train_with_progress

    result = (
        train_with_progress(manifest, out, cfg, resume, console)
        if cfg is not None
        else train_run(manifest, out, None, resume=True, say=console.print)
    )
    console.print(
        f"[green]done[/] in {result.seconds:.0f} s: {out}/predictions.parquet "
        f"({result.predictions['model'].nunique()} models); next: radiopath evaluate {out}"
    )


@app.command()
@_friendly
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder holding predictions.parquet.")],
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap resamples for the confidence intervals.")
    ] = 2000,
    seed: Annotated[
        int | None, typer.Option(help="Bootstrap seed (default: the run's protocol.seed).")
    ] = None,
    sensitivity: Annotated[
        float, typer.Option(help="Sensitivity at which dissections spared / metastases missed are reported.")
    ] = 0.9,
    pair: Annotated[
        list[str] | None,
        typer.Option(help="Models to compare, as A:B (repeatable; default: each fusion model vs baselines)."),
    ] = None,
) -> None:
    """Metrics with CIs, paired tests and clinical utility → RUN/metrics.json and RUN/tables/*.csv."""
    from radiopath.evaluate import evaluate_run
    from radiopath.evaluate.console import print_evaluation

    pairs = None
    if pair:
        bad = [p for p in pair if p.count(":") != 1]
        if bad:
            raise typer.BadParameter(f"--pair takes MODEL_A:MODEL_B, got {bad}")
        pairs = [tuple(p.split(":")) for p in pair]
    ev = evaluate_run(run, n_boot=n_boot, seed=seed, sensitivity=sensitivity, pairs=pairs)  # type: ignore[arg-type]
    print_evaluation(console, ev)
    console.print(f"[green]wrote[/] {run / 'metrics.json'} and {run / 'tables'}/")


@app.command()
@_friendly
def report(
    run: Annotated[Path, typer.Argument(help="Run folder holding predictions.parquet.")],
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap resamples, when the run needs (re-)evaluating.")
    ] = 2000,
) -> None:
    """Write RUN/report.html: one self-contained study report (evaluates first if needed)."""
    from radiopath.report import write_report

    path = write_report(run, n_boot=n_boot)
    console.print(f"[green]wrote[/] {path}")


@app.command()
@_friendly
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the demo's cohort and results.")
    ] = Path("radiopath-demo"),
    patients: Annotated[int, typer.Option(help="Patients in the synthetic cohort.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config: Annotated[
        Path | None, typer.Option(help="RunConfig YAML to use instead of the fast profile (advanced).")
    ] = None,
) -> None:
    """The whole study on a synthetic cohort: synth, validate, tile, extract ResNet-101 features,
    5-fold CV of ultrasound-only, cytology-only and fusion models, external validation,
    evaluation and report.html — in minutes on a laptop CPU."""
    from radiopath.demo import run_demo
    from radiopath.train.config import RunConfig

    run_config = RunConfig.from_yaml(config) if config else None
    run_demo(out, patients=patients, seed=seed, console=console, run_config=run_config)


def main() -> None:  # pragma: no cover - entry point
    """Entry point for ``python -m radiopath``."""
    app(prog_name="radiopath")
    sys.exit(0)
