"""Cohorts: the manifest contract, its validation, summaries and patient-level folds."""

from radiopath.cohort.cohort import Cohort
from radiopath.cohort.problems import Problem
from radiopath.cohort.splits import assign_folds
from radiopath.cohort.summary import cohort_summary
from radiopath.cohort.validation import ValidationReport, validate_manifest

__all__ = ["Cohort", "Problem", "ValidationReport", "assign_folds", "cohort_summary", "validate_manifest"]
