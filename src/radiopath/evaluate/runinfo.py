"""What a run folder says about itself: ``config.yaml``, ``provenance.json``, and the seed to use.

``config.yaml`` is read as the same typed :class:`~radiopath.run_config.RunConfig` that
training wrote (importable without torch); a run folder without one — predictions made
elsewhere — gives None, and the report says "not recorded" rather than guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radiopath.errors import ConfigError
from radiopath.evaluate._checks import EvaluationError
from radiopath.run_config import RunConfig, read_run_config


def read_config(run: str | Path) -> RunConfig | None:
    """``RUN/config.yaml`` as a typed :class:`RunConfig`; None when the file is absent.

    Raises:
        EvaluationError: the file exists but is not a valid run configuration (names the key).
    """
    try:
        return read_run_config(run)
    except ConfigError as exc:
        raise EvaluationError(f"{exc}\nfix or remove {Path(run) / 'config.yaml'}") from None


def read_provenance(run: str | Path) -> dict[str, Any]:
    """``RUN/provenance.json``; ``{}`` when absent."""
    path = Path(run) / "provenance.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read provenance ({exc}); fix or remove the file") from None
    return data if isinstance(data, dict) else {}


def lookup(mapping: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``mapping['a']['b']`` for ``'a.b'``; ``default`` when any part is missing."""
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → ``{'a.b': value}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def resolve_seed(
    seed: int | None, config: RunConfig | None, provenance: Mapping[str, Any]
) -> tuple[int, str]:
    """The bootstrap seed and where it came from: the argument, ``protocol.seed``, provenance, or 0."""
    if seed is not None:
        return int(seed), "given"
    for source, value in (
        ("config.yaml protocol.seed", config.protocol.seed if config is not None else None),
        ("provenance.json seed", provenance.get("seed")),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value, source
    return 0, "default (0)"
