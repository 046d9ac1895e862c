"""Evaluation statistics computed from a run's ``predictions.parquet`` alone.

Functions and classes (à la scikit-learn / MONAI):

* metrics — :func:`binary_metrics`, :class:`BinaryMetrics`, :func:`confusion_counts`
* bootstrap — :func:`bootstrap_metrics`, :class:`Bootstrap` (stratified, vectorised)
* DeLong — :func:`delong_roc_variance`, :func:`delong_covariance`, :func:`auc_ci_delong`,
  :func:`delong_test`, :class:`DeLong` (Sun & Xu 2014 fast algorithm)
* :func:`mcnemar_test`, :func:`holm_adjust`
* calibration — :func:`calibration_intercept_slope`, :func:`calibration_bins`
* clinical utility — :func:`net_benefit`, :func:`decision_curve`, :func:`threshold_for_sensitivity`,
  :func:`utility_at_threshold`, :class:`NetBenefit`
* proportions — :func:`proportion_ci`, :class:`ProportionCI` (Wilson, Clopper–Pearson)
* nested thresholds — :func:`nested_thresholds`, :class:`NestedThreshold`
* conformal risk sets — :class:`MondrianConformal`, :func:`conformal_quantile`, :func:`cross_conformal_sets`
* model updating — :class:`LogisticRecalibration`, :func:`crossfit_recalibration`
* the run folder — :func:`evaluate_run` → ``metrics.json`` + ``tables/*.csv``; :func:`load_predictions`
"""

from radiopath.evaluate._checks import EvaluationError
from radiopath.evaluate.bootstrap import Bootstrap, BootstrapResult, MetricEstimate, bootstrap_metrics
from radiopath.evaluate.calibration import CalibrationResult, calibration_bins, calibration_intercept_slope
from radiopath.evaluate.conformal import MondrianConformal, conformal_quantile, cross_conformal_sets
from radiopath.evaluate.decision import (
    DecisionCurve,
    NetBenefit,
    decision_curve,
    net_benefit,
    net_benefit_treat_all,
    threshold_for_sensitivity,
    utility_at_threshold,
)
from radiopath.evaluate.evaluate import evaluate_run
from radiopath.evaluate.metrics import (
    METRIC_LABELS,
    METRIC_NAMES,
    BinaryMetrics,
    binary_metrics,
    confusion_counts,
)
from radiopath.evaluate.nested import NestedThreshold, nested_thresholds
from radiopath.evaluate.predictions import PredictionsError, load_predictions
from radiopath.evaluate.proportions import ProportionCI, proportion_ci
from radiopath.evaluate.recalibration import LogisticRecalibration, crossfit_recalibration
from radiopath.evaluate.results import Evaluation, load_evaluation
from radiopath.evaluate.stats import (
    DeLong,
    auc_ci_delong,
    delong_covariance,
    delong_roc_variance,
    delong_test,
    holm_adjust,
    mcnemar_test,
)

__all__ = [
    "METRIC_LABELS",
    "METRIC_NAMES",
    "BinaryMetrics",
    "Bootstrap",
    "BootstrapResult",
    "CalibrationResult",
    "DeLong",
    "DecisionCurve",
    "Evaluation",
    "EvaluationError",
    "LogisticRecalibration",
    "MetricEstimate",
    "MondrianConformal",
    "NestedThreshold",
    "NetBenefit",
    "PredictionsError",
    "ProportionCI",
    "auc_ci_delong",
    "binary_metrics",
    "bootstrap_metrics",
    "calibration_bins",
    "calibration_intercept_slope",
    "conformal_quantile",
    "confusion_counts",
    "cross_conformal_sets",
    "crossfit_recalibration",
    "decision_curve",
    "delong_covariance",
    "delong_roc_variance",
    "delong_test",
    "evaluate_run",
    "holm_adjust",
    "load_evaluation",
    "load_predictions",
    "mcnemar_test",
    "nested_thresholds",
    "net_benefit",
    "net_benefit_treat_all",
    "proportion_ci",
    "threshold_for_sensitivity",
    "utility_at_threshold",
]
