"""Data parallelism under ``torchrun``: PyTorch DDP, gloo on CPU and NCCL on GPU.

Nothing here is home-made distribution: ``torchrun --nproc_per_node N -m radiopath train …``
sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`init` starts the process group and
:func:`wrap` puts a model in ``DistributedDataParallel``. Without torchrun every function is
a no-op for a single process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as tdist
from torch import nn


def requested() -> bool:
    """True when launched by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_active() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def world_size() -> int:
    return tdist.get_world_size() if is_active() else 1


def rank() -> int:
    return tdist.get_rank() if is_active() else 0


def is_main() -> bool:
    return rank() == 0


def init(device_type: str = "cpu") -> None:
    """Start the process group (gloo on CPU, NCCL on CUDA) if torchrun asked for one."""
    if not requested() or is_active():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(backend=backend)


def shutdown() -> None:
    if is_active():
        tdist.destroy_process_group()


def barrier() -> None:
    if is_active():
        tdist.barrier()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` when a process group is active, else ``model``."""
    if not is_active():
        return model
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, broadcast_buffers=False, find_unused_parameters=True
    )


def shard(n: int) -> range:
    """The items of ``range(n)`` this rank handles (strided, so work is balanced)."""
    return range(rank(), n, world_size())


@contextmanager
def main_first() -> Iterator[None]:
    """Let rank 0 run a block (e.g. writing a shared file) before the others."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
