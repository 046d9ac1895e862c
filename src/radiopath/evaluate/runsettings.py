"""The few facts about the run that the statistics need, read in one place.

:func:`run_settings` is the only place in ``radiopath.evaluate`` that reads protocol options
(``protocol.threshold_rule``, ``protocol.target_sensitivity``, the seed) from ``config.yaml``
(through :func:`~radiopath.evaluate.runinfo.read_config` and ``lookup``). When the
configuration becomes a typed model, only this function changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiopath.evaluate._checks import EvaluationError
from radiopath.evaluate.runinfo import lookup, read_config, read_provenance, resolve_seed

#: The training protocol's defaults (``radiopath.train.protocol.ProtocolConfig``), used when a
#: run's ``config.yaml`` does not record the rule; repeated here so evaluation stays torch-free.
DEFAULT_THRESHOLD_RULE = "youden"
DEFAULT_TARGET_SENSITIVITY = 0.9
THRESHOLD_RULES = ("youden", "sensitivity")


@dataclass(frozen=True)
class RunSettings:
    """What evaluation reads from a run folder besides the predictions."""

    threshold_rule: str  #: "youden" or "sensitivity": how the run froze its thresholds
    target_sensitivity: float  #: the target of the "sensitivity" rule
    rule_source: str  #: where the rule came from (config key, or the protocol default)
    seed: int
    seed_source: str
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def run_settings(run: str | Path, seed: int | None = None) -> RunSettings:
    """The threshold rule, its target sensitivity and the seed of ``run`` (``seed`` overrides)."""
    run = Path(run)
    config = read_config(run)
    provenance = read_provenance(run)
    seed_value, seed_source = resolve_seed(seed, config, provenance)
    rule = lookup(config, "protocol.threshold_rule")
    if rule is None:
        rule, source = DEFAULT_THRESHOLD_RULE, f"default ({DEFAULT_THRESHOLD_RULE}; not in config.yaml)"
    else:
        source = "config.yaml protocol.threshold_rule"
    rule = str(rule).strip().lower()
    if rule not in THRESHOLD_RULES:
        raise EvaluationError(
            f"{run / 'config.yaml'}: protocol.threshold_rule is {rule!r}; evaluation can repeat only "
            f"{list(THRESHOLD_RULES)} — fix the value to the rule the run used"
        )
    target = lookup(config, "protocol.target_sensitivity", DEFAULT_TARGET_SENSITIVITY)
    try:
        target = float(target)
    except (TypeError, ValueError):
        target = float("nan")
    if not 0 < target <= 1:
        raise EvaluationError(
            f"{run / 'config.yaml'}: protocol.target_sensitivity must be a number in (0, 1], "
            f"got {lookup(config, 'protocol.target_sensitivity')!r}"
        )
    return RunSettings(rule, target, source, seed_value, seed_source, config, provenance)
