"""Moved to :mod:`radiopath.models.inputs` (kept so existing imports keep working)."""

from radiopath.models.inputs import PatientInputs

__all__ = ["PatientInputs"]
