"""Synthetic multi-center cohorts with known ground truth (the demo's data and most tests')."""

from radiopath.synth.cohort import SynthResult, synthesize
from radiopath.synth.latent import oracle_auc
from radiopath.synth.spec import CenterSpec, SynthConfig

__all__ = ["CenterSpec", "SynthConfig", "SynthResult", "oracle_auc", "synthesize"]
