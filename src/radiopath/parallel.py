"""Process pools that are safe to start from a process that already runs torch.

Forking a process whose OpenMP / intra-op thread pools are running (torch, OpenCV) can
deadlock the children: they inherit locked mutexes of threads that do not exist in them.
Every pool radiopath starts therefore comes from a clean ``forkserver`` (or ``spawn`` where
forkserver does not exist), whatever the caller imported before. As with any non-fork
start method, a script that starts such a pool needs the usual
``if __name__ == "__main__":`` guard (the ``radiopath`` command and notebooks do not).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def process_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers start from a clean interpreter."""
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context(method), initializer=initializer, initargs=initargs
    )
