"""Where and in what precision to compute (every stage that runs a network uses this).

CUDA when present, else CPU. Mixed precision: bf16 autocast on CUDA with bf16 support, and on
CPUs whose oneDNN build reports native bf16 (AVX-512 BF16 / AMX); elsewhere fp32, because
emulated bf16 is slower than fp32. channels_last memory format for convolutions.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from radiopath.errors import ConfigError


@dataclass(frozen=True)
class ComputePlan:
    """Resolved device, autocast dtype (None = fp32) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        amp = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp_dtype]
        return f"{self.device.type}, {amp}{', channels_last' if self.channels_last else ''}"


def cpu_bf16_supported() -> bool:
    """True when this CPU runs bf16 convolutions natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def plan(device: str = "auto", precision: str = "auto", channels_last: bool = True) -> ComputePlan:
    """Resolve ``device`` (auto|cpu|cuda[:N]) and ``precision`` (auto|fp32|bf16).

    Raises:
        ConfigError: CUDA asked for but absent, or bf16 asked for where it is not supported.
    """
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto"
            )
    native_bf16 = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_bf16_supported()
    if precision == "auto":
        amp = torch.bfloat16 if native_bf16 else None
    elif precision == "fp32":
        amp = None
    elif precision == "bf16":
        amp = torch.bfloat16
    else:
        raise ConfigError(f"precision must be auto, fp32 or bf16, got '{precision}'")
    return ComputePlan(dev, amp, channels_last)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads (None: unchanged).

    Heads on cached features are tiny: with several threads the ops are too small to split
    and the threads spin against each other (and against other processes) — one thread is
    several times faster there.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stable_seed(*parts: object) -> int:
    """A seed from any hashable parts, stable across processes and Python versions."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Fork torch's global RNG for a block (dropout, random masks) and restore it after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
