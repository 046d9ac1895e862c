"""Configuration base: strict pydantic models with YAML in and out.

Every option radiopath has lives in a model derived from :class:`StrictModel`, so an
unknown or misspelt key is an error that names the key, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from radiopath.errors import ConfigError
from radiopath.io.atomic import write_text

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of all option models: unknown keys are errors; values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_yaml(cls: type[M], path: str | Path) -> M:
        """Load and validate a YAML file; errors name the file and the offending key."""
        path = Path(path)
        return cls.from_dict(_read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any], source: str = "config") -> M:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"{source}: invalid configuration"]
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "(top level)"
                lines.append(f"  - {key}: {err['msg']}")
            raise ConfigError("\n".join(lines)) from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The fully resolved options as YAML; written atomically when ``path`` is given."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            write_text(path, text)
        return text


def merge_options(
    model: type[M],
    yaml_path: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    base: M | None = None,
    section: str | None = None,
    outer: type[StrictModel] | None = None,
) -> M:
    """The one place where a YAML file and command-line flags become options.

    Precedence: ``flags`` the user typed (non-None values, dotted keys like
    ``"model.backbone"``) over the YAML file over ``base`` (default: the model's defaults).
    A flag left at None — the user did not type it — never overrides the file. With
    ``section`` and ``outer``, the YAML may also be a whole ``outer`` configuration (it is then
    validated as one) whose ``section`` (dotted, e.g. ``"cytology.tiling"``) holds these options.

    Raises:
        ConfigError: unreadable YAML, an unknown key or an invalid value (names file and key).
    """
    data: dict[str, Any] = base.model_dump(mode="json") if base is not None else {}
    source = "options"
    if yaml_path is not None:
        loaded = _read_yaml(Path(yaml_path))
        if section and outer is not None and loaded and set(loaded) <= set(outer.model_fields):
            whole = outer.from_dict(loaded, source=str(yaml_path))  # a whole run config: check all of it
            node: Any = whole
            for part in section.split("."):
                node = getattr(node, part)
            loaded = node.model_dump(mode="json", exclude_unset=True)
        data = _deep_update(data, loaded)
        source = str(yaml_path)
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return model.from_dict(data, source=source)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of options at the top level, got {type(data).__name__}"
        )
    return data


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = _deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
