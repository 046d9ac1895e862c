"""Moved to :mod:`radiopath.compute` (kept so existing imports keep working)."""

from radiopath.compute import ComputePlan, cpu_bf16_supported, plan, seeded, stable_seed, threads

__all__ = ["ComputePlan", "cpu_bf16_supported", "plan", "seeded", "stable_seed", "threads"]
