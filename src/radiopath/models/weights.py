"""Where a backbone's weights come from: ``none``, ``imagenet`` (online), or a local file.

Offline with ``imagenet`` and no cached download is a clear error naming both ways out
(``--weights PATH`` or ``--weights none``), never a hang: we check the torch hub cache first
and only then ask torchvision to download, with a short socket timeout.

Local files are read without unpickling code: ``.safetensors`` via safetensors, anything
else via ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radiopath.errors import ConfigError

NONE, IMAGENET = "none", "imagenet"


def describe(weights: str) -> str:
    """Stable identifier of a weights choice, for cache keys and provenance."""
    if weights in (NONE, IMAGENET):
        return weights
    path = Path(weights)
    stat = path.stat() if path.exists() else None
    return f"file:{path.resolve()}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pth``/``.pt`` file (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} not found; give an existing .safetensors or .pth file")
    if path.suffix == ".safetensors":
        from radiopath.models.checkpoint import load_tensors

        return load_tensors(path)[0]  # a non-safetensors file is a ConfigError naming it
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, corrupt file, …
        raise ConfigError(
            f"{path}: cannot be read as plain weights ({type(exc).__name__}); radiopath never unpickles "
            "code — convert it to .safetensors or save only the state_dict"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return obj


def apply_file_weights(module: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``module``; strips ``module.``/``backbone.`` prefixes and
    ignores a classifier head (``fc.``), reporting any other mismatch by name."""
    state = load_state_dict(path)
    cleaned: dict[str, Any] = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key.startswith(("fc.", "head.", "classifier.")):
            continue
        cleaned[key] = value
    try:
        missing, unexpected = module.load_state_dict(cleaned, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)[:200]
        raise ConfigError(
            f"{path}: does not fit the backbone ({first.strip()}); check that the file was saved from the "
            "same architecture"
        ) from None
    missing = [k for k in missing if not k.startswith(("fc.", "head."))]
    if missing or unexpected:
        raise ConfigError(
            f"{path}: does not fit the backbone (missing {missing[:5]}, unexpected {list(unexpected)[:5]}); "
            "check that the file was saved from the same architecture"
        )


def imagenet_weights(enum_cls: Any) -> Any:
    """The torchvision ``Weights`` enum value, downloading only when reachable.

    Raises:
        ConfigError: offline and not cached — names ``--weights PATH`` and ``--weights none``.
    """
    weights = enum_cls.DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.exists():
        return weights
    if not _online(weights.url):
        raise ConfigError(
            f"ImageNet weights for this backbone are not cached ({cached}) and {weights.url} cannot be "
            "reached. Download them once while online, or pass --weights PATH to a local "
            ".safetensors/.pth file, or --weights none to start from random weights"
        )
    return weights


def _online(url: str, timeout: float = 3.0) -> bool:
    host = url.split("/")[2]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
