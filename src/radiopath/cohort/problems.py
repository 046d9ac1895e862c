"""Problems found in a manifest, each located by row and column and carrying its fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest.

    Attributes:
        severity: ``error`` blocks use of the manifest; ``warning`` does not.
        message: what is wrong.
        fix: what the user should do.
        row: 1-based data row (the first patient is row 1); None for whole-manifest problems.
        column: the column concerned, if any.
        line: line in a CSV file (header is line 1), when the manifest is CSV.
    """

    severity: Severity
    message: str
    fix: str
    row: int | None = None
    column: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """``row 3 (line 4), column us_1`` — or ``manifest`` when no row applies."""
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        if self.column:
            parts.append(f"column {self.column}")
        return ", ".join(parts) or "manifest"

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}; fix: {self.fix}"
