"""The few facts about the run that the statistics need, read in one place.

:func:`run_settings` is the only place in ``radiopath.evaluate`` that reads protocol options
(``protocol.threshold_rule``, ``protocol.target_sensitivity``, the seed, the primary model)
from the run's typed ``config.yaml`` (:func:`~radiopath.evaluate.runinfo.read_config`); a run
without one falls back to the protocol's defaults, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiopath.evaluate.runinfo import read_config, read_provenance, resolve_seed
from radiopath.run_config import ProtocolConfig, RunConfig, resolve_primary

#: The protocol's defaults, used when a run folder has no ``config.yaml``.
DEFAULT_THRESHOLD_RULE = ProtocolConfig().threshold_rule
DEFAULT_TARGET_SENSITIVITY = ProtocolConfig().target_sensitivity


@dataclass(frozen=True)
class RunSettings:
    """What evaluation reads from a run folder besides the predictions."""

    threshold_rule: str  #: "youden" or "sensitivity": how the run froze its thresholds
    target_sensitivity: float  #: the target of the "sensitivity" rule
    rule_source: str  #: where the rule came from (config key, or the protocol default)
    seed: int
    seed_source: str
    config: RunConfig | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def primary_model(self, models: list[str]) -> str:
        """The study's primary model: ``protocol.primary_model``, else the protocol's default rule
        applied to the models that have predictions."""
        named = self.config.protocol.primary_model if self.config is not None else None
        if named is not None and named in models:
            return named
        return resolve_primary(None, models)


def run_settings(run: str | Path, seed: int | None = None) -> RunSettings:
    """The threshold rule, its target sensitivity and the seed of ``run`` (``seed`` overrides)."""
    run = Path(run)
    config = read_config(run)
    provenance = read_provenance(run)
    seed_value, seed_source = resolve_seed(seed, config, provenance)
    if config is None:
        rule, source = DEFAULT_THRESHOLD_RULE, f"default ({DEFAULT_THRESHOLD_RULE}; no config.yaml)"
        target = DEFAULT_TARGET_SENSITIVITY
    else:
        rule, source = config.protocol.threshold_rule, "config.yaml protocol.threshold_rule"
        target = config.protocol.target_sensitivity
    return RunSettings(rule, float(target), source, seed_value, seed_source, config, provenance)
