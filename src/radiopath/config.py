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
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read YAML ({exc})") from None
        return cls.from_dict(data, source=str(path))

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
