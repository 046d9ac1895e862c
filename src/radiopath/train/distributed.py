"""Moved to :mod:`radiopath.distributed` (kept so existing imports keep working)."""

from radiopath.distributed import (
    barrier,
    init,
    is_active,
    is_main,
    main_first,
    rank,
    requested,
    shard,
    shutdown,
    world_size,
    wrap,
)

__all__ = [
    "barrier",
    "init",
    "is_active",
    "is_main",
    "main_first",
    "rank",
    "requested",
    "shard",
    "shutdown",
    "world_size",
    "wrap",
]
