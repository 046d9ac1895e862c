"""The run folder's file names, in one place (DESIGN.md's run-folder contract).

``RUN/`` holds::

    config.yaml            the fully resolved RunConfig (written first)
    provenance.json        versions, seed, compute plan, data fingerprint, timings
    cohort.parquet         the validated cohort (ids, centers, cohorts, labels, inputs)
    data_fingerprint.parquet  per patient: center, cohort, label, content keys of the inputs
                           (``--resume`` refuses a run whose data changed)
    folds.csv              the patient-level folds (external / unlabelled = -1)
    preprocessing.json     the fitted preprocessing of every modality (development only)
    inputs.json            how model inputs were made: mode, dimensions, feature families,
                           clinical columns, compute precision of the backbones
    ultrasound_flags.csv   instances the preprocessing flagged (no scan area, marks removed, …)
    acquisition.parquet    per modality and center, the acquisition check against development
                           (ultrasound brightness and contrast, slide sharpness; no labels)
    shift.parquet          per modality and center, the feature shift against development
                           (domain-classifier AUC, standardised mean differences; no labels)
    harmonization.json     (harmonization.method) the method, every center's decision and source;
    harmonization.safetensors   the development reference and each center's adjustment
    adabn.json             (harmonization.method adabn, finetune) per model and external center: AdaBN or not
    checkpoints/<model>/fold<k>/best.safetensors        a fold model's weights
    checkpoints/<model>/fold<k>/checkpoint.safetensors  its training state (for --resume)
    checkpoints/<model>/predictions.parquet             that model's predictions, when done
    predictions.parquet    every model's predictions: the hub for metrics and reports
    thresholds.json        the frozen threshold of each model
    logs/                  TensorBoard event files (and MLflow, when installed)
    .lock                  held while a run writes the folder (names the holder)
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
COHORT = "cohort.parquet"
FINGERPRINT = "data_fingerprint.parquet"
FOLDS = "folds.csv"
PREPROCESSING = "preprocessing.json"
INPUTS = "inputs.json"
FLAGS = "ultrasound_flags.csv"
ACQUISITION = "acquisition.parquet"
SHIFT = "shift.parquet"
HARMONIZATION = "harmonization.json"
HARMONIZATION_TENSORS = "harmonization.safetensors"
#: finetune mode, ``harmonization.method: adabn``: per model and external center, adapted or not
ADABN = "adabn.json"
CHECKPOINTS = "checkpoints"
PREDICTIONS = "predictions.parquet"
THRESHOLDS = "thresholds.json"
LOGS = "logs"
LOCK = ".lock"


def model_dir(run: str | Path, model: str) -> Path:
    """``RUN/checkpoints/<model>``."""
    return Path(run) / CHECKPOINTS / model


def fold_dir(run: str | Path, model: str, fold: int) -> Path:
    """``RUN/checkpoints/<model>/fold<k>``."""
    return model_dir(run, model) / f"fold{fold}"


def model_predictions(run: str | Path, model: str) -> Path:
    """``RUN/checkpoints/<model>/predictions.parquet`` (written when the model is done)."""
    return model_dir(run, model) / "predictions.parquet"
