"""The ``radiopath`` command line: thin wrappers that parse, call the Python API, and print.

Every verb maps to an importable function; nothing here computes anything a user could not
get from the API. Options are merged in one place (:func:`radiopath.config.merge_options`):
a flag the user typed over the ``--config`` YAML over the defaults — a flag left out never
overrides the file. Errors derived from :class:`~radiopath.errors.RadiopathError` print as
one clean message with exit status 2; anything unexpected prints a short message and the
path of a full log, never a traceback.
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from radiopath.display import make_console
from radiopath.errors import RadiopathError

app = typer.Typer(
    name="radiopath",
    help="Multimodal radiopathomics: predict lymph-node metastasis in papillary thyroid carcinoma "
    "from ultrasound images and FNA cytology slides.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = make_console()  # full width, no colour codes when the output is a log file
err_console = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

#: OS errors a user's environment causes (disk full, no permission, …): exit 2 with the path.
_USER_ERRNOS = {
    errno.ENOSPC,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOENT,
    errno.EDQUOT,
}


def _friendly(fn: F) -> F:
    """RadiopathError → red message, exit 2; anything else → short message + log path, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except RadiopathError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print(
                "interrupted; rerun the same command to continue where it stopped", soft_wrap=True
            )
            raise typer.Exit(code=130) from None
        except OSError as exc:
            if exc.errno in _USER_ERRNOS:
                where = f"{exc.filename}: " if exc.filename else ""
                err_console.print(
                    f"[bold red]error:[/] {escape(where)}{exc.strerror}; check that the path exists, is "
                    "writable and that the disk has space",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(code=2) from None
            _crash(fn.__name__, exc)
        except Exception as exc:  # the last resort: never a traceback on the terminal
            _crash(fn.__name__, exc)

    return wrapper  # type: ignore[return-value]


def _crash(verb: str, exc: BaseException) -> None:
    log = _write_crash_log(verb, exc)
    err_console.print(
        f"[bold red]radiopath {verb} failed unexpectedly:[/] {type(exc).__name__}: {escape(str(exc)[:300])}\n"
        f"the full log is in {escape(str(log))}; please include it when you report this",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=1) from None


def _write_crash_log(verb: str, exc: BaseException) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"radiopath {verb} — {stamp}\ncommand: {' '.join(sys.argv)}\n\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    for folder in (
        Path(os.environ.get("RADIOPATH_LOG_DIR", "")) if os.environ.get("RADIOPATH_LOG_DIR") else None,
        Path.home() / ".cache" / "radiopath" / "logs",
        Path(tempfile.gettempdir()),
    ):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"radiopath-{verb}-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(no writable folder for the log)")


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from radiopath import __version__

        console.print(f"radiopath {__version__}")
        raise typer.Exit()


# --- shared option types -------------------------------------------------------------------------

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        help="YAML with any RunConfig option (one file for tile, extract and train; see RUN/config.yaml)."
    ),
]
MppOpt = Annotated[
    Path | None, typer.Option(help="CSV 'slide,mpp' giving the resolution of slides without metadata.")
]
CacheOpt = Annotated[
    Path | None, typer.Option(help="Tile and feature cache folder (default ~/.cache/radiopath).")
]
FastOpt = Annotated[
    bool, typer.Option(help="Start from the demo's fast profile (112-px inputs, 8 tiles, random weights).")
]
BackboneOpt = Annotated[
    str | None, typer.Option(help="resnet18|34|50|101|152 or timm:<name> (default resnet101).")
]
WeightsOpt = Annotated[
    str | None, typer.Option(help="none | imagenet | PATH to .safetensors/.pth (default imagenet).")
]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda (default auto).")]
PrecisionOpt = Annotated[
    str | None, typer.Option(help="auto | fp32 | bf16 for the backbones (default auto).")
]
FeatureSetOpt = Annotated[
    str | None,
    typer.Option(
        help="deep | handcrafted | hybrid, or per modality: ultrasound=handcrafted,cytology=hybrid."
    ),
]


def _feature_set(value: str | None) -> Any:
    """``hybrid`` → "hybrid"; ``ultrasound=handcrafted,cytology=hybrid`` → a mapping."""
    if value is None or "=" not in value:
        return value
    pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise typer.BadParameter(f"--feature-set takes NAME or MODALITY=NAME,…; got {value!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def _extraction_flags(
    backbone: str | None,
    weights: str | None,
    feature_set: str | None,
    device: str | None,
    precision: str | None,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """The flags ``extract`` and ``train`` share, as dotted RunConfig keys (None: not typed)."""
    return {
        "model.backbone": backbone,
        "model.weights": weights,
        "model.feature_set": _feature_set(feature_set),
        "train.device": device,
        "train.precision": precision,
        "cache_dir": str(cache_dir) if cache_dir else None,
    }


def _run_config(config: Path | None, fast: bool, flags: dict[str, Any]) -> Any:
    """Defaults (or the fast profile) ← the YAML file ← the flags the user typed."""
    from radiopath.config import merge_options
    from radiopath.run_config import RunConfig, fast_profile

    return merge_options(RunConfig, config, flags, base=fast_profile() if fast else None)


# --- verbs ------------------------------------------------------------------------------------------


ProportionCiOpt = Annotated[
    str,
    typer.Option(
        "--proportion-ci",
        help="Intervals of accuracy, sensitivity, specificity, PPV, NPV: wilson | clopper-pearson.",
    ),
]
ConformalOpt = Annotated[
    float,
    typer.Option("--conformal-alpha", help="Error rate of the conformal risk sets (0 leaves them out)."),
]


@app.command()
@_friendly
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to create (must not exist or be empty).")],
    patients: Annotated[
        int | None, typer.Option(help="Number of patients over all centers (default 300).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed: the same seed gives the same cohort (default 0).")
    ] = None,
    us_signal: Annotated[
        float | None,
        typer.Option(help="Weight of the ultrasound latent in the LNM risk (0 = none; default 1)."),
    ] = None,
    cytology_signal: Annotated[
        float | None, typer.Option(help="Weight of the cytology latent in the risk (0 = none; default 1).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file with any SynthConfig option (centers, …); flags override it."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (0 = one per CPU core; default 0).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it already holds files.")] = False,
) -> None:
    """Generate a synthetic multi-center cohort: manifest, ultrasound, slides, truth.csv."""
    from radiopath.config import merge_options
    from radiopath.synth import SynthConfig

    flags = {"patients": patients, "seed": seed, "us_signal": us_signal, "cytology_signal": cytology_signal}
    cfg = merge_options(SynthConfig, config, {**flags, "workers": workers})
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
    acquisition: Annotated[
        bool,
        typer.Option(
            help="Compare each center's ultrasound brightness and contrast with the development centers' "
            "(a sample of first views per center) and warn where they differ much."
        ),
    ] = True,
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
    if acquisition and check_files and len(report.table):
        from radiopath.shift.acquisition import ultrasound_acquisition, ultrasound_warnings

        for w in ultrasound_warnings(ultrasound_acquisition(report.table)):
            console.print(f"[yellow]acquisition:[/] {w}", soft_wrap=True)
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
    config: Annotated[
        Path | None,
        typer.Option(help="YAML: a RunConfig (its cytology.tiling section is used) or TilingConfig options."),
    ] = None,
    target_mpp: Annotated[float | None, typer.Option(help="µm per pixel of the tiles (default 0.5).")] = None,
    tile_size: Annotated[int | None, typer.Option(help="Tile side in pixels (default 224).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Tiles kept per slide (default 64).")] = None,
    mpp_table: MppOpt = None,
    export_patches: Annotated[bool, typer.Option(help="Also write the kept tiles as PNG files.")] = False,
    workers: Annotated[int, typer.Option(help="Slides tiled in parallel (processes).")] = 1,
) -> None:
    """Find the cell-bearing tiles of every slide: tile table, thumbnails, QC flags."""
    from radiopath.config import merge_options
    from radiopath.slides import TilingConfig, tile_cohort

    flags = {"target_mpp": target_mpp, "tile_size": tile_size, "top_k": top_k}
    from radiopath.run_config import RunConfig

    cfg = merge_options(TilingConfig, config, flags, section="cytology.tiling", outer=RunConfig)
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
    if Path(source).suffix.lower() in (".csv", ".parquet", ".pq"):
        _tile_sharpness(Path(source), Path(table), out)


def _tile_sharpness(manifest: Path, tiles: Path, out: Path) -> None:
    """Each center's slide sharpness against the development slides' → ``TILES/sharpness.json``."""
    import json

    import pandas as pd

    from radiopath.cohort import Cohort
    from radiopath.io.atomic import write_text
    from radiopath.slides.sharpness import cohort_sharpness

    state, centers, warnings = cohort_sharpness(pd.read_parquet(tiles), Cohort.from_manifest(manifest).table)
    if state is None:
        return
    record = {"reference": state.to_dict(), "centers": centers.to_dict(orient="records")}
    write_text(out / "sharpness.json", json.dumps(record, indent=1))
    for r in centers.itertuples():
        console.print(
            f"  sharpness {r.center}: Laplacian variance {r.laplacian_ratio:.0%} of development "
            f"(robust z {r.sharpness_z:+.1f}, {r.slides_judged} slides)",
            soft_wrap=True,
            highlight=False,
        )
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)


@app.command()
@_friendly
def extract(
    manifest: Annotated[Path, typer.Argument(help="Validated manifest (.csv or .parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Features folder to write (FEATS); rerun to refresh.")
    ],
    config: ConfigOpt = None,
    tiles: Annotated[
        Path | None, typer.Option(help="A finished `radiopath tile` folder to take tiles from.")
    ] = None,
    mpp_table: MppOpt = None,
    fast: FastOpt = False,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    feature_set: FeatureSetOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Fit the preprocessing on the development cohort, extract every view's and tile's features → FEATS."""
    from radiopath.progress import feature_bars
    from radiopath.stages import extract_cohort

    flags = _extraction_flags(backbone, weights, feature_set, device, precision, cache_dir)
    cfg = _run_config(config, fast, flags)
    with feature_bars(console) as progress:
        fs = extract_cohort(
            manifest, out, cfg, tiles=tiles, mpp_table=mpp_table, say=console.print, progress=progress
        )
    counts = ", ".join(f"{len(v)} {k}" for k, v in fs.features.items())
    console.print(
        f"[green]wrote[/] {out} ({counts} instances); next: radiopath train {manifest} --features {out}"
    )


@app.command()
@_friendly
def train(
    manifest: Annotated[Path, typer.Argument(help="Validated manifest (.csv or .parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder to create (or to continue with --resume).")
    ],
    config: ConfigOpt = None,
    features: Annotated[
        Path | None, typer.Option(help="A `radiopath extract` folder to train on (features mode).")
    ] = None,
    tiles: Annotated[
        Path | None, typer.Option(help="A finished `radiopath tile` folder to take tiles from.")
    ] = None,
    mpp_table: MppOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run in OUT where it stopped.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in OUT.")] = False,
    fast: FastOpt = False,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    mode: Annotated[str | None, typer.Option(help="features (frozen backbone, cached) or finetune.")] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma list, e.g. ultrasound,cytology,fusion_concat.")
    ] = None,
    primary: Annotated[
        str | None, typer.Option(help="The study's primary model (default fusion_concat).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per fold.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for folds, initialisation and shuffles.")] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    feature_set: FeatureSetOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Run the study protocol (5-fold CV, frozen threshold, external ensemble) for every model."""
    from radiopath.progress import feature_bars
    from radiopath.train.run import train_run

    flags = {
        **_extraction_flags(backbone, weights, feature_set, device, precision, cache_dir),
        "train.mode": mode,
        "model.models": models.split(",") if models else None,
        "protocol.primary_model": primary,
        "train.epochs": epochs,
        "protocol.n_folds": folds,
        "protocol.seed": seed,
    }
    typed = config is not None or fast or any(v is not None for v in flags.values())
    cfg = _run_config(config, fast, flags) if (typed or not resume) else None
    with feature_bars(console) as progress:
        result = train_run(
            manifest,
            out,
            cfg,
            resume=resume,
            say=console.print,
            feature_progress=progress,
            features=features,
            tiles=tiles,
            mpp_table=mpp_table,
            overwrite=overwrite,
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
    proportion_ci: ProportionCiOpt = "wilson",
    conformal_alpha: ConformalOpt = 0.1,
    recalibrate: Annotated[
        bool,
        typer.Option(
            "--recalibrate",
            help="Also update the frozen model at each external center with that center's labels "
            "(model updating, reported in its own table; never instead of the external validation).",
        ),
    ] = False,
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
    ev = evaluate_run(
        run,
        n_boot=n_boot,
        seed=seed,
        sensitivity=sensitivity,
        pairs=pairs,  # type: ignore[arg-type]
        proportion_ci=proportion_ci,
        conformal_alpha=conformal_alpha or None,
        recalibrate=recalibrate,
    )
    print_evaluation(console, ev)
    console.print(f"[green]wrote[/] {run / 'metrics.json'} and {run / 'tables'}/")


@app.command()
@_friendly
def report(
    run: Annotated[Path, typer.Argument(help="Run folder holding predictions.parquet.")],
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap resamples, when the run needs (re-)evaluating.")
    ] = 2000,
    proportion_ci: Annotated[
        str | None,
        typer.Option(
            "--proportion-ci",
            help="wilson | clopper-pearson intervals of proportions (default: as RUN/metrics.json has them).",
        ),
    ] = None,
    conformal_alpha: Annotated[
        float | None,
        typer.Option(
            "--conformal-alpha",
            help="Error rate of the conformal risk sets; 0 leaves them out (default: as evaluated).",
        ),
    ] = None,
    recalibrate: Annotated[
        bool | None,
        typer.Option(
            "--recalibrate/--no-recalibrate",
            help="Show (or leave out) the model-updating analysis with each external center's labels "
            "(default: as evaluated; the report shows it only when it was asked for).",
        ),
    ] = None,
) -> None:
    """Write RUN/report.html: one self-contained study report (evaluates first if needed, and again
    when --proportion-ci, --conformal-alpha or --recalibrate ask for other settings)."""
    from radiopath.report import write_report

    path = write_report(
        run,
        n_boot=n_boot,
        proportion_ci=proportion_ci,
        conformal_alpha=conformal_alpha,
        recalibrate=recalibrate,
    )
    console.print(f"[green]wrote[/] {path}")


@app.command()
@_friendly
def explain(
    run: Annotated[Path, typer.Argument(help="A finished run folder (from `radiopath train`).")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Model to explain (repeatable; default: primary and single-modality)."
        ),
    ] = None,
    patients: Annotated[
        str | None, typer.Option(help="Patient ids to explain, comma-separated (default: --n of them).")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", min=1, help="Patients drawn from TP, FN, TN, FP of the primary model.")
    ] = 12,
    gallery: Annotated[
        int | None,
        typer.Option(
            min=0, help="Pictures for the first K explained patients only (default: all); the checks use all."
        ),
    ] = None,
    target_layer: Annotated[
        str | None,
        typer.Option(help="Backbone layer for Grad-CAM (default: its last block; finer: body.layer3)."),
    ] = None,
    method: Annotated[str, typer.Option(help="gradcam or gradcam++.")] = "gradcam",
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Grad-CAM of both modalities, slide heatmaps, nuclear enrichment vs a randomised twin,
    deletion and modality contribution → RUN/explain/ (the report shows it)."""
    from radiopath.explain import explain_run

    ids = [p.strip() for p in patients.split(",") if p.strip()] if patients else None
    result = explain_run(
        run,
        models=[m for item in model for m in item.split(",") if m] if model else None,
        patients=ids,
        n=n,
        gallery=gallery,
        target_layer=target_layer,
        method=method,
        device=device,
        precision=precision or "auto",
        cache_dir=cache_dir,
        say=console.print,
    )
    for name, block in result.summary["models"].items():
        e, r = block.get("nuclear_enrichment"), block.get("nuclear_enrichment_randomized")
        if e and e.get("mean") is not None:
            console.print(
                f"  {name}: nuclear enrichment {e['mean']:.2f} ({e['ci_low']}–{e['ci_high']}), "
                f"randomised twin {r['mean'] if r else '–'}"
            )
    console.print(f"[green]wrote[/] {result.folder}; next: radiopath report {run}")


@app.command()
@_friendly
def export(
    run: Annotated[Path, typer.Argument(help="A finished run folder (radiopath train --out).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to create.")],
    onnx: Annotated[
        bool, typer.Option(help="Also write ONNX graphs: each backbone once, each fold's head.")
    ] = False,
    version: Annotated[
        str, typer.Option(help="The bundle's own version (semantic versioning; bump it on re-export).")
    ] = "1.0.0",
    intended_use: Annotated[
        Path | None, typer.Option(help="Text file with the intended-use statement (default: a generic one).")
    ] = None,
    authors: Annotated[
        str, typer.Option(help="Who made the model (goes into metadata.json).")
    ] = "not recorded",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it already holds files.")] = False,
) -> None:
    """Make a finished run a deployable bundle: fold weights, preprocessing, thresholds, metadata.json."""
    from radiopath.serve import export_bundle

    text = intended_use.read_text(encoding="utf-8").strip() if intended_use else None
    result = export_bundle(
        run, out, onnx=onnx, version=version, intended_use=text, authors=authors, overwrite=overwrite,
        say=console.print,
    )  # fmt: skip
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    console.print(
        f"[green]wrote[/] {result.bundle} ({result.files} files, {result.bytes / 1e6:.1f} MB; models "
        f"{', '.join(result.models)}; fingerprint {result.fingerprint[:16]}); next: radiopath serve {out}",
        soft_wrap=True,
    )


@app.command()
@_friendly
def predict(
    bundle: Annotated[Path, typer.Argument(help="A model bundle (radiopath export --out).")],
    manifest: Annotated[Path, typer.Argument(help="Manifest of the patients to score (lnm may be empty).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions file (.csv or .parquet).")],
    runtime: Annotated[
        str, typer.Option(help="torch | onnx (needs a bundle exported with --onnx).")
    ] = "torch",
    precision: Annotated[
        str, typer.Option(help="auto (the run's own precision) | fp32 | bf16 for the backbones.")
    ] = "auto",
    device: DeviceOpt = None,
    models: Annotated[
        str | None, typer.Option(help="Comma list of models (default: all, the primary model first).")
    ] = None,
    mpp_table: MppOpt = None,
    cache_dir: CacheOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 2 when any row could not be scored.")] = False,
) -> None:
    """Score new patients with a bundle: one row per patient and model (prob, decision, fold spread);
    bad rows are reported (OUT.failed.csv) and the others still scored."""
    from radiopath.serve import load_bundle
    from radiopath.serve.predict import predict_manifest, write_predictions

    b = load_bundle(bundle, runtime=runtime)
    for w in b.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    result = predict_manifest(
        b, manifest, models=models.split(",") if models else None, device=device, precision=precision,
        cache_dir=cache_dir, mpp_table=mpp_table, say=console.print,
    )  # fmt: skip
    for f in result.failures:
        console.print(f"[red]failed[/] {f}", highlight=False, soft_wrap=True)
    if not result.scored:
        console.print(
            f"[bold red]error:[/] none of the {result.rows} row(s) could be scored; nothing written"
        )
        raise typer.Exit(code=2)
    failed = write_predictions(result, out)
    flagged = int(result.predictions["missing_modality"].sum())
    console.print(
        f"[green]wrote[/] {out}: {result.scored} of {result.rows} patient(s) scored"
        + (f", {flagged} prediction(s) flagged missing_modality" if flagged else "")
        + (f"; {len(result.failures)} row(s) failed, listed in {failed}" if failed else ""),
        soft_wrap=True,
    )
    if strict and result.failures:
        raise typer.Exit(code=2)


@app.command()
@_friendly
def serve(
    bundle: Annotated[Path, typer.Argument(help="A model bundle (radiopath export --out).")],
    host: Annotated[
        str, typer.Option(help="Address to listen on (localhost only by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    runtime: Annotated[str, typer.Option(help="torch | onnx.")] = "torch",
    precision: Annotated[str, typer.Option(help="auto (the run's own) | fp32 | bf16.")] = "auto",
    device: DeviceOpt = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="Audit log (JSON lines; default ./radiopath-audit.jsonl).")
    ] = None,
    max_upload_mb: Annotated[
        int, typer.Option(help="Largest upload accepted, in MB (all files together).")
    ] = 2048,
) -> None:
    """Serve a bundle: a web page for clinicians at / and a JSON API (/predict, docs at /docs)."""
    from radiopath.serve.app import run_server

    run_server(
        bundle, host=host, port=port, runtime=runtime, precision=precision, device=device,
        audit_log=audit_log, max_upload_mb=max_upload_mb, say=console.print,
    )  # fmt: skip


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
    from radiopath.run_config import RunConfig

    run_config = RunConfig.from_yaml(config) if config else None
    run_demo(out, patients=patients, seed=seed, console=console, run_config=run_config)


def main() -> None:  # pragma: no cover - entry point
    """Entry point for ``python -m radiopath``."""
    app(prog_name="radiopath")
    sys.exit(0)
