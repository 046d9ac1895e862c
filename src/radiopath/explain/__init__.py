"""Explanations of a finished run: Grad-CAM on both modalities, slide heatmaps, and checks.

``explain_run(RUN)`` (``radiopath explain RUN``) writes ``RUN/explain/``: per-patient panels
(ultrasound views with Grad-CAM, slide heatmaps of tile attention and tile Grad-CAM, the
most-attended tiles with their nuclei), and the numbers that test the maps — nuclear
enrichment of the CAM mass against a randomised twin (Adebayo et al. 2018), deletion curves
against random removal, and each modality's contribution to the fused prediction.

Modules: :mod:`.gradcam` (the ``grad-cam`` package's methods on a shared backbone pass),
:mod:`.cases` (patients with the run's preprocessing), :mod:`.engine` (maps and checks),
:mod:`.nuclear` (nuclear focus), :mod:`.heatmaps` (stitching), :mod:`.checks`
(randomisation, summaries), :mod:`.figures`, :mod:`.explain` (the stage).
"""

from radiopath.explain.explain import (
    DEFAULT_PATIENTS,
    ExplainResult,
    choose_patients,
    default_models,
    explain_run,
)

__all__ = ["DEFAULT_PATIENTS", "ExplainResult", "choose_patients", "default_models", "explain_run"]
