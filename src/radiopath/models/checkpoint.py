"""Every checkpoint radiopath reads or writes: safetensors files, atomically, never pickle.

* weights — a flat ``{name: tensor}`` file (a fold's best weights, a bundle's heads), with
  optional string metadata;
* training state — one file per fold holding the model's and the optimizer's tensors and the
  loop state (epoch, early-stopping counters, history) as JSON metadata, rewritten every
  epoch so a killed run resumes where it stopped.

Reading a file that is not safetensors (a pickle named ``.safetensors``, a truncated copy) is
a :class:`~radiopath.errors.ConfigError` naming the file, never an unpickling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radiopath.errors import ConfigError
from radiopath.io.atomic import atomic_path

#: File names inside a fold's checkpoint folder.
BEST = "best.safetensors"
TRAINING_STATE = "checkpoint.safetensors"


def save_tensors(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    durable: bool = True,
) -> None:
    """Write ``tensors`` (made contiguous, on the CPU) to ``path`` atomically."""
    from safetensors.torch import save_file

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path, durable=durable) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file.

    Raises:
        ConfigError: missing, unreadable or not a safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found; was the run finished (or the bundle complete)?")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"{path}: not a readable safetensors file ({str(exc)[:120]}); radiopath never unpickles "
            "weights — re-create the file, or convert it with safetensors.torch.save_file"
        ) from None
    return tensors, meta


def read_metadata(path: str | Path) -> dict[str, str]:
    """Only the metadata of a safetensors file (cheap: tensors are not read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path}: not a readable safetensors file ({str(exc)[:120]})") from None


def save_weights(path: str | Path, model: nn.Module, durable: bool = True) -> None:
    """A module's ``state_dict`` (buffers included) as a weights file."""
    save_tensors(path, model.state_dict(), durable=durable)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weights file into ``model`` (strict: every name must match).

    Raises:
        ConfigError: unreadable file, or weights of another architecture (names the keys).
    """
    tensors, _ = load_tensors(path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"{path}: does not fit this model ({str(exc).splitlines()[0][:200]}); the checkpoint belongs to "
            "another configuration"
        ) from None
    return model


def save_training_state(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loop_state: dict[str, Any],
    durable: bool = True,
) -> None:
    """One file with the model, the optimizer and the loop state (see the module docstring)."""
    optim_tensors, groups = _flatten_optimizer(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"optim.{k}": v for k, v in optim_tensors.items()})
    meta = {"state": json.dumps(loop_state, allow_nan=True), "param_groups": json.dumps(groups)}
    save_tensors(Path(folder) / TRAINING_STATE, tensors, meta, durable=durable)


def has_training_state(folder: str | Path) -> bool:
    return (Path(folder) / TRAINING_STATE).is_file()


def load_training_state(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(model state_dict, optimizer state_dict, loop state)`` written by :func:`save_training_state`."""
    tensors, meta = load_tensors(Path(folder) / TRAINING_STATE)
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = _unflatten_optimizer(
        {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")}, json.loads(meta["param_groups"])
    )
    return model, optim, json.loads(meta["state"])


def loop_history(folder: str | Path) -> list[dict[str, float]]:
    """The per-epoch history stored with a fold's training state."""
    meta = read_metadata(Path(folder) / TRAINING_STATE)
    return list(json.loads(meta["state"]).get("history", []))


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors = {
        f"{pid}.{name}": t.detach().contiguous().cpu()
        for pid, st in sd["state"].items()
        for name, t in st.items()
        if torch.is_tensor(t)
    }
    return tensors, sd["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    return {"state": state, "param_groups": groups}
