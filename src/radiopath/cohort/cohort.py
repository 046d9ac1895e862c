"""A validated cohort: the typed manifest plus the operations every stage needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from radiopath.cohort.problems import Problem
from radiopath.cohort.schema import DEVELOPMENT, EXTERNAL
from radiopath.cohort.splits import EXTERNAL_FOLD, assign_folds
from radiopath.cohort.summary import cohort_summary
from radiopath.cohort.validation import EmptyMask, validate_manifest


@dataclass
class Cohort:
    """Patients of a study, one row each, with absolute paths and typed labels.

    Build it with :meth:`from_manifest`, which validates everything first: a ``Cohort``
    object always describes a clean manifest.

    Attributes:
        table: columns ``row, patient_id, center, cohort, lnm, us_1, us_2, us_1_mask,
            us_2_mask, cytology, us_1_box, us_2_box`` and any ``clin_*``.
        manifest: the manifest file it came from.
        warnings: non-blocking problems found during validation.
    """

    table: pd.DataFrame
    manifest: Path
    warnings: list[Problem] = field(default_factory=list)

    @classmethod
    def from_manifest(
        cls,
        path: str | Path,
        strict: bool = False,
        check_files: bool = True,
        empty_mask: EmptyMask = "error",
        max_pixels: int | None = None,
    ) -> Cohort:
        """Validate ``path`` and build the cohort (options as in :func:`validate_manifest`).

        Raises:
            ManifestError: listing every error (row, column, fix) when there is any.
        """
        report = validate_manifest(
            path, strict=strict, check_files=check_files, empty_mask=empty_mask, max_pixels=max_pixels
        )
        report.raise_for_errors()
        return cls(table=report.table, manifest=Path(path), warnings=report.warnings)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def development(self) -> pd.DataFrame:
        """Development patients (cross-validation), labelled or not."""
        return self.table[self.table["cohort"] == DEVELOPMENT]

    @property
    def external(self) -> pd.DataFrame:
        """External-validation patients: never trained or tuned on."""
        return self.table[self.table["cohort"] == EXTERNAL]

    @property
    def centers(self) -> list[str]:
        return sorted(self.table["center"].unique())

    def summary(self) -> pd.DataFrame:
        """Patients, prevalence and modality availability per cohort and center."""
        return cohort_summary(self.table)

    def folds(self, n_splits: int = 5, seed: int = 0) -> pd.Series:
        """Fold per patient (indexed by ``patient_id``): 0..n_splits-1 for labelled
        development patients, -1 for everyone else (external, or unlabelled).

        Stratified by label, and by center × label when development spans several centers.
        """
        t = self.table
        fold = pd.Series(EXTERNAL_FOLD, index=t["patient_id"].to_numpy(), name="fold", dtype=int)
        dev = t[(t["cohort"] == DEVELOPMENT) & t["lnm"].notna()]
        labels = dev["lnm"].astype(int).to_numpy()
        strata = None
        if dev["center"].nunique() > 1:
            strata = (dev["center"].astype(str) + "|" + dev["lnm"].astype(str)).to_numpy()
        folds = assign_folds(labels, dev["patient_id"].to_numpy(), n_splits, seed, strata)
        fold.loc[dev["patient_id"].to_numpy()] = folds
        return fold

    def paths(self, column: str) -> list[Path | None]:
        """Absolute paths of one file column (None where empty)."""
        return [Path(p) if isinstance(p, str) else None for p in self.table[column]]

    def labels(self) -> np.ndarray:
        """``lnm`` as float with NaN for unlabelled patients."""
        return self.table["lnm"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
