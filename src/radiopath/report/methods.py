"""The report's methods section, written from what the run recorded, and its TRIPOD+AI map.

Every sentence is built from the run's typed configuration (``config.yaml`` read as
:class:`~radiopath.run_config.RunConfig`), its fitted preprocessing (``preprocessing.json``),
``provenance.json``, the predictions and the evaluation settings; what the run did not record
is written as "not recorded", never guessed. :data:`TRIPOD_AI` maps the items of the
TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378) to the report section that
answers them, and says plainly which items the authors must still write themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from radiopath.evaluate.results import Evaluation
from radiopath.evaluate.runinfo import flatten
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.run_config import RunConfig

NOT_RECORDED = "not recorded"

REFERENCES: dict[str, str] = {
    "delong": "DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more "
    "correlated receiver operating characteristic curves: a nonparametric approach. "
    "Biometrics 1988;44:837–45.",
    "sunxu": "Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under "
    "correlated receiver operating characteristic curves. IEEE Signal Process Lett 2014;21:1389–93.",
    "efron": "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993.",
    "vancalster": "Van Calster B, McLernon DJ, van Smeden M, et al. Calibration: the Achilles heel of "
    "predictive analytics. BMC Med 2019;17:230.",
    "vickers": "Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction "
    "models. Med Decis Making 2006;26:565–74.",
    "mcnemar": "McNemar Q. Note on the sampling error of the difference between correlated proportions or "
    "percentages. Psychometrika 1947;12:153–7.",
    "holm": "Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat 1979;6:65–70.",
    "wilson": "Wilson EB. Probable inference, the law of succession, and statistical inference. "
    "J Am Stat Assoc 1927;22:209–12.",
    "chen": "Chen RJ, Lu MY, Wang J, et al. Pathomic Fusion: an integrated framework for fusing "
    "histopathology and genomic features for cancer diagnosis and prognosis. IEEE Trans Med Imaging "
    "2022;41:757–70.",
    "tripod": "Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting "
    "clinical prediction models that use regression or machine learning methods. BMJ 2024;385:e078378.",
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return NOT_RECORDED
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or NOT_RECORDED
    return str(value)


def _rec(section: Any, name: str) -> Any:
    """An option's value if the run's config.yaml recorded it, else None ("not recorded").

    radiopath writes every option; a hand-made or truncated config.yaml leaves some out, and
    the typed model's defaults must not be reported as what the run did.
    """
    return getattr(section, name) if name in section.model_fields_set else None


def _section_keys(section: Any) -> str:
    """The recorded options of one config section as ``key = value`` pairs."""
    data = section.model_dump(mode="json", exclude_unset=True)
    return "; ".join(f"{k} = {_fmt(v)}" for k, v in flatten(data).items()) or NOT_RECORDED


_FUSION_WORDS = {
    "none": "single modality",
    "late": "late fusion (per-modality classifiers, logits averaged)",
    "concat": "feature-level fusion (concatenated embeddings)",
    "gated": "gated-attention fusion over modalities",
    "bilinear": "gated bilinear (Kronecker) fusion [Chen 2020]",
}


def _model_list(config: RunConfig) -> str:
    """Each model with its inputs and fusion, from the typed specs."""
    parts = []
    for spec in config.model.specs():
        inputs = " + ".join(MODALITIES[m].label for m in spec.modalities)
        parts.append(f"{spec.name} ({inputs}; {_FUSION_WORDS.get(spec.fusion, spec.fusion)})")
    return "; ".join(parts)


def _preprocessing(run: Path | None) -> str:
    """What the run fitted on its development cohort, from ``preprocessing.json``."""
    if run is None or not (run / "preprocessing.json").is_file():
        return NOT_RECORDED
    try:
        states = json.loads((run / "preprocessing.json").read_text(encoding="utf-8")).get("modalities", {})
    except (OSError, ValueError):
        return NOT_RECORDED
    lines = []
    for key, state in states.items():
        m = MODALITIES.get(key)
        if isinstance(m, ImageModality):
            lines.append(f"{m.label}: {m.describe_state(state)}")
        elif m is not None:
            lines.append(f"{m.label}: encoding (columns, category levels) fitted on the development cohort")
    return "; ".join(lines) or "nothing fitted"


def _centers(ev: Evaluation, cohort: str) -> tuple[list[str], int, int, int]:
    flow = ev.cohort_flow
    sub = flow[(flow["cohort"] == cohort) & (flow["center"] != "(all)")]
    tot = flow[(flow["cohort"] == cohort) & (flow["center"] == "(all)")]
    if tot.empty:
        return [], 0, 0, 0
    t = tot.iloc[0]
    return list(sub["center"]), int(t["patients"]), int(t["labelled"]), int(t["lnm_pos"])


def _threshold_rule(rule: Any, target: Any) -> str:
    if rule == "youden":
        return "maximising Youden's J (sensitivity + specificity − 1) on the pooled out-of-fold predictions"
    if rule == "sensitivity":
        return (
            f"the highest threshold whose out-of-fold sensitivity reached {_fmt(target)}"
            " on the development cohort"
        )
    return f"rule {_fmt(rule)}"


def methods_paragraphs(
    ev: Evaluation,
    config: RunConfig | None,
    provenance: Mapping[str, Any],
    predictions: pd.DataFrame,
    run: Path | None = None,
) -> list[tuple[str, str]]:
    """(heading, text) paragraphs describing exactly what was done, from the run's own records."""
    s = ev.settings
    dev_centers, dev_n, dev_lab, dev_pos = _centers(ev, "development")
    ext_centers, ext_n, ext_lab, ext_pos = _centers(ev, "external")
    n_folds = _rec(config.protocol, "n_folds") if config is not None else None
    folds_seen = int(predictions.loc[predictions["cohort"] == "development", "fold"].nunique())
    out: list[tuple[str, str]] = []
    ext_txt = (
        f"; {ext_n} patients from {len(ext_centers)} other center(s) ({', '.join(ext_centers)}) formed the "
        f"external validation cohort ({ext_lab} with a known outcome, {ext_pos} with LNM), used neither for "
        "training nor for choosing thresholds or hyperparameters"
        if ext_centers
        else "; there was no external validation cohort"
    )
    out.append(
        (
            "Participants and data",
            f"The development cohort comprised {dev_n} patients from {len(dev_centers)} center(s) "
            f"({', '.join(dev_centers) or NOT_RECORDED}; {dev_lab} with a known outcome, {dev_pos} of them "
            "with "
            f"lymph-node metastasis, LNM){ext_txt}. Dates of accrual, eligibility criteria and the care "
            "setting are "
            f"{NOT_RECORDED} in the run and must be reported by the authors. The outcome is the manifest's "
            "'lnm' "
            "label (1 = metastasis, 0 = none); how and when it was ascertained is "
            f"{NOT_RECORDED} in the run.",
        )
    )
    if config is None:
        out.append(("Inputs and pre-processing", f"Pre-processing options: {NOT_RECORDED} (no config.yaml)."))
        out.append(("Model", f"Model options: {NOT_RECORDED}. Models evaluated: {', '.join(ev.models)}."))
    else:
        t, mc = config.train, config.model
        sections = [
            f"{m.label.capitalize()} options: {_section_keys(getattr(config, m.section))}."
            for m in MODALITIES.values()
            if m.section and m.options is not None
        ]
        fsets = "; ".join(
            f"{m.label}: {mc.feature_set_of(m.key)}"
            for m in MODALITIES.values()
            if isinstance(m, ImageModality)
        )
        fs_text = (
            f"Feature sets (model.feature_set; features mode): {fsets} — deep = the frozen backbone's "
            "pooled features; handcrafted = ultrasound radiomics of the nodule region (IBSI-named "
            "first-order, 2-D shape, GLCM, GLRLM, GLSZM, GLDM, NGTDM, LBP) and cytology nuclear "
            "morphometry, chromatin and crowding per tile at the tiling resolution; hybrid = both, each "
            "block standardised and projected inside the training folds. "
            if t.mode == "features"
            else "Finetune mode: the backbones were trained on the images end to end (model.feature_set "
            "applies to features mode only). "
        )
        out.append(
            (
                "Inputs and pre-processing",
                fs_text
                + " ".join(sections)
                + f" Fitted on the development cohort only and applied unchanged to every other patient: "
                f"{_preprocessing(run)}.",
            )
        )
        extra_train = {
            k: v for k, v in t.model_dump(mode="json").items() if k not in {"mode", "epochs", "lr"}
        }
        primary = s.get("primary_model") or config.primary_model()
        out.append(
            (
                "Model",
                f"Backbone {_fmt(_rec(mc, 'backbone'))}"
                + (f" (cytology: {mc.cytology_backbone})" if mc.cytology_backbone else "")
                + f", initial weights {_fmt(_rec(mc, 'weights'))}; training mode {_fmt(_rec(t, 'mode'))}"
                + (
                    " (frozen backbone, cached features, heads trained)"
                    if _rec(t, "mode") == "features"
                    else ""
                )
                + f", at most {_fmt(_rec(t, 'epochs'))} epochs, learning rate {_fmt(_rec(t, 'lr'))}; other "
                "training options: "
                + ("; ".join(f"{k} = {_fmt(v)}" for k, v in extra_train.items()) or NOT_RECORDED)
                + f". Models: {_model_list(config)}. The primary model, named in the configuration before "
                f"the run (protocol.primary_model), is {primary}.",
            )
        )
        from radiopath.report.shift import robustness_paragraph

        out.append(("Robustness to other centers", robustness_paragraph(config, run)))
    thr = ", ".join(f"{m} {t:.3f}" for m, t in ev.thresholds.items())
    out.append(
        (
            "Validation and decision thresholds",
            f"Internal validation used {_fmt(n_folds) if n_folds is not None else folds_seen}-fold "
            "cross-validation "
            f"on the development cohort ({folds_seen} folds present in the predictions; seed "
            f"{_fmt(_rec(config.protocol, 'seed') if config is not None else None)}): every development "
            "patient is scored once, by the model of "
            "the fold "
            "that did not train on them, and internal metrics pool these out-of-fold predictions. External "
            "patients were scored by the ensemble of the fold models. Each model's decision threshold was "
            "chosen "
            f"by {_threshold_rule(s.get('threshold_rule'), s.get('target_sensitivity'))} and then frozen: "
            f"{thr}.",
        )
    )
    miss = ""
    if "missing_modality" in predictions.columns:
        mm = predictions[predictions["missing_modality"].fillna(False).astype(bool)]
        if len(mm):
            per = mm.groupby("model")["patient_id"].nunique()
            miss = (
                "Predictions made with a missing input: "
                + ", ".join(f"{m} {int(k)} patient(s)" for m, k in per.items())
                + ". "
            )
    n_unl = int(predictions.loc[predictions["label"].isna(), "patient_id"].nunique())
    per_model = predictions.groupby("model")["patient_id"].nunique()
    out.append(
        (
            "Missing data",
            f"{miss}Patients without a known outcome ({n_unl}) were scored but excluded from every metric. "
            "Patients per model: "
            + ", ".join(f"{m} {int(k)}" for m, k in per_model.items())
            + ". Paired comparisons and decision curves use the patients every compared model scored.",
        )
    )
    ci = f"{s.get('ci', 0.95):.0%}"
    out.append(
        (
            "Statistical analysis",
            "Performance was computed from the predictions alone, for the internal out-of-fold "
            "predictions, each "
            f"external center and the pooled external cohort. Discrimination: AUC with a {ci} DeLong "
            "confidence "
            "interval [DeLong 1988] computed by the fast algorithm of Sun & Xu [2014]; average precision "
            "(AUCPR). "
            "Accuracy, sensitivity, specificity, PPV, NPV and F1 were computed externally at each model's "
            "frozen threshold and internally at nested thresholds: for each development fold the threshold "
            "was chosen by the same rule on the out-of-fold predictions of the other folds and applied to "
            "that fold, so no patient was classified at a threshold chosen on their own prediction; figures "
            "at the frozen threshold on the pooled out-of-fold predictions are reported as secondary. "
            "Overall and calibration: Brier score, calibration intercept (calibration-in-the-large, logit of "
            "the prediction as offset) and calibration slope (logistic recalibration) [Van Calster 2019]. "
            f"Confidence intervals: {s.get('proportion_ci', 'Wilson')} intervals [Wilson 1927; Clopper "
            "1934] for the proportions (accuracy, sensitivity, specificity, PPV, NPV), DeLong for the AUC, "
            "and a stratified "
            f"percentile bootstrap with {s.get('n_boot')} resamples (seed {s.get('seed')}, from "
            f"{s.get('seed_source')}) — within center and outcome for pooled multi-center cohorts — for F1, "
            "AUCPR, Brier score and calibration [Efron 1993]. Model comparisons: paired DeLong "
            "test of "
            "the AUC difference with its confidence interval, and McNemar's test of paired accuracy at the "
            "frozen "
            "thresholds (exact binomial with fewer than 25 discordant pairs, else χ² with continuity "
            "correction) "
            "[McNemar 1947]; p-values are also given after Holm adjustment within each cohort [Holm 1979]. "
            "Clinical utility: decision curve analysis (net benefit against threshold probability, with "
            "dissect-all and dissect-none strategies) [Vickers 2006], and, at the threshold reaching "
            f"{s.get('sensitivity_target', 0.9):.0%} sensitivity on the development data, dissections "
            "spared and "
            "metastases missed per 100 patients. Calibration plots group patients by deciles of predicted "
            "risk with "
            "Wilson intervals [Wilson 1927]. " + _updating(s),
        )
    )
    versions = provenance.get("versions") if isinstance(provenance.get("versions"), Mapping) else {}
    soft = ", ".join(f"{k} {v}" for k, v in versions.items()) or NOT_RECORDED
    out.append(
        (
            "Software",
            f"radiopath {s.get('radiopath_version', NOT_RECORDED)} (evaluation); training-stage versions: "
            f"{soft}.",
        )
    )
    return out


def _updating(settings: Mapping[str, Any]) -> str:
    recal = settings.get("recalibration")
    if not recal:
        return "No recalibration or other model updating was applied."
    return (
        "As a separate analysis of model updating, the frozen models were recalibrated at each external "
        "center with that center's outcomes (intercept only, then intercept and slope), cross-fitted in "
        f"{recal.get('folds')} folds within the center; the external validation results are those of the "
        "frozen models."
    )


@dataclass(frozen=True)
class TripodItem:
    item: str
    topic: str
    status: str  #: "reported", "partly", "authors", "n/a"
    where: str  #: section anchor in the report, or ""
    note: str


#: TRIPOD+AI items (numbering of the 2024 statement) and how this report covers them.
TRIPOD_AI: tuple[TripodItem, ...] = (
    TripodItem(
        "5a",
        "Data sources",
        "partly",
        "cohort",
        "centers and cohorts per data source; the nature of the data (registry, routine care…) is for the "
        "authors",
    ),
    TripodItem(
        "6a",
        "Setting: number and location of centres",
        "partly",
        "cohort",
        "number and names of centers; care setting and location are for the authors",
    ),
    TripodItem(
        "7",
        "Data preparation",
        "partly",
        "methods",
        "pre-processing options from config.yaml; quality checks are in the validate step",
    ),
    TripodItem(
        "8a",
        "Outcome definition",
        "authors",
        "methods",
        "the label used is stated; how and when LNM was ascertained is not recorded",
    ),
    TripodItem(
        "10",
        "Sample size",
        "partly",
        "cohort",
        "patients and events per cohort are given; a sample-size justification is for the authors",
    ),
    TripodItem(
        "11",
        "Missing data",
        "reported",
        "methods",
        "missing modalities and unknown outcomes counted, and how they were handled",
    ),
    TripodItem(
        "12a",
        "How data were used (partitioning)",
        "reported",
        "methods",
        "cross-validation folds and the external cohort",
    ),
    TripodItem(
        "12c",
        "Model type, building steps, tuning, internal validation",
        "partly",
        "methods",
        "from config.yaml; keys the run did not record are marked",
    ),
    TripodItem(
        "12d",
        "Heterogeneity across clusters",
        "reported",
        "centers",
        "per-center metrics and forest plot (descriptive; no meta-analysis)",
    ),
    TripodItem(
        "12e",
        "Performance measures and plots, model comparison",
        "reported",
        "methods",
        "discrimination, calibration, clinical utility, paired tests",
    ),
    TripodItem("12f", "Model updating", "reported", "methods", "none: predictions are evaluated as produced"),
    TripodItem(
        "12g",
        "How predictions were calculated for evaluation",
        "reported",
        "methods",
        "out-of-fold models for development, fold ensemble for external",
    ),
    TripodItem(
        "15",
        "Model output and thresholds",
        "reported",
        "methods",
        "probabilities; threshold rule and frozen values",
    ),
    TripodItem(
        "16",
        "Development versus evaluation data",
        "partly",
        "cohort",
        "prevalence and modality availability per cohort; other differences are for the authors",
    ),
    TripodItem(
        "18f",
        "Code availability",
        "partly",
        "provenance",
        "radiopath version and run configuration; the repository link is for the authors",
    ),
    TripodItem(
        "20a",
        "Flow of participants",
        "reported",
        "cohort",
        "flow diagram and table, with and without the outcome",
    ),
    TripodItem(
        "20b",
        "Characteristics per data source",
        "partly",
        "cohort",
        "size, events, modalities per center; demographics are not in the run",
    ),
    TripodItem(
        "20c",
        "Development vs evaluation distribution",
        "partly",
        "cohort",
        "outcome and modality availability only",
    ),
    TripodItem(
        "21",
        "Participants and events in each analysis",
        "reported",
        "performance",
        "n and events on every table row",
    ),
    TripodItem(
        "23a",
        "Performance with confidence intervals",
        "reported",
        "performance",
        "all metrics with 95% CIs; subgroups by center",
    ),
    TripodItem(
        "23b",
        "Heterogeneity of performance across clusters",
        "reported",
        "centers",
        "per-center table and forest plot",
    ),
    TripodItem("24", "Results of model updating", "n/a", "", "no updating was done"),
    TripodItem(
        "14", "Fairness", "authors", "", "no sociodemographic variables in the run; not assessed here"
    ),
)
#: Items the report cannot answer at all (they need the authors' knowledge).
TRIPOD_AUTHORS_ONLY: tuple[str, ...] = (
    "1",
    "2",
    "3a",
    "3b",
    "3c",
    "4",
    "5b",
    "6b",
    "6c",
    "8b",
    "8c",
    "9a",
    "9b",
    "9c",
    "12b",
    "13",
    "17",
    "18a",
    "18b",
    "18c",
    "18d",
    "18e",
    "19",
    "22",
    "25",
    "26",
    "27a",
    "27b",
    "27c",
)
