"""Train one model on one fold: BCE (class-weighted on request), AdamW, cosine schedule, early stopping.

Early stopping watches the loss on an inner validation split carved out of the training
folds (never the held-out fold). Every epoch is reproducible on its own — the shuffle and
the dropout RNG are seeded from ``(seed, epoch)`` — so a run resumed from the checkpoint of
epoch *e* continues exactly as the uninterrupted run would have, and ends with the same
weights. Checkpoints (model, optimizer, early-stopping state) are written atomically every
``checkpoint_every`` epochs with safetensors.

Features mode with augmented passes (``train.augment_passes``, :mod:`radiopath.features.passes`):
each epoch draws, per patient and image modality, one of the clean and augmented passes
(uniformly, from a generator seeded by ``(seed, epoch)`` over all patients, so the draw does not
depend on the number of processes); early stopping and prediction use the clean features.

Under ``torchrun`` the loop is data-parallel (DDP): each global batch is split across ranks
and the loss is scaled so that the averaged gradient equals the single-process gradient.
Only backbones (finetune mode) may run under bf16 autocast; the heads train in fp32, so a
run gives the same predictions on every processor and with any number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from radiopath import distributed as dist
from radiopath.compute import ComputePlan, seeded, threads
from radiopath.models import checkpoint as ckpt_io
from radiopath.models.inference import predict_proba
from radiopath.models.inputs import PatientInputs
from radiopath.models.model import RadiopathModel
from radiopath.run_config import TrainConfig

Augment = Callable[[dict[str, torch.Tensor], np.random.Generator], dict[str, torch.Tensor]]

__all__ = ["Augment", "FoldResult", "TrainConfig", "has_checkpoint", "predict", "train_fold"]


@dataclass
class FoldResult:
    """Outcome of training one model on one fold."""

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)


def _loss_fn(logits: torch.Tensor, target: torch.Tensor, pos_weight: float, denom: float) -> torch.Tensor:
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits.float(), target, pos_weight=torch.tensor(pos_weight, device=logits.device), reduction="sum"
    )
    return loss / denom


def train_fold(
    model: RadiopathModel,
    inputs: PatientInputs,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    seed: int,
    compute: ComputePlan,
    ckpt_dir: Path | None = None,
    augment: Augment | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> FoldResult:
    """Train ``model`` in place on ``train_idx``, early-stop on ``val_idx``; load the best weights.

    Resumes from ``ckpt_dir`` when it holds an unfinished run of the same fold.
    """
    with threads(1 if len(model.backbones) == 0 and compute.device.type == "cpu" else None):
        return _train_fold(model, inputs, train_idx, val_idx, cfg, seed, compute, ckpt_dir, augment, on_epoch)


def _train_fold(
    model: RadiopathModel,
    inputs: PatientInputs,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    seed: int,
    compute: ComputePlan,
    ckpt_dir: Path | None,
    augment: Augment | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> FoldResult:
    device = compute.device
    mods = list(model.spec.modalities)
    y_train = inputs.label[train_idx]
    n_pos, n_neg = float((y_train == 1).sum()), float((y_train == 0).sum())
    pos_weight = n_neg / max(n_pos, 1.0) if cfg.class_weighted else 1.0
    model.to(device)
    model.backbone_amp = compute.amp_dtype
    model.fit_standardizers(inputs.arrays, train_idx, _standardizer_passes(inputs))
    groups = [{"params": [], "base_lr": cfg.lr}, {"params": [], "base_lr": cfg.backbone_lr}]
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[int(name.startswith("backbones."))]["params"].append(p)
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
    ddp_model = dist.wrap(model)
    state = _State()
    if ckpt_dir is not None and ckpt_io.has_training_state(ckpt_dir):
        state = _resume(ckpt_dir, model, opt)
        if state.done:
            return state.result()
    world, rank = dist.world_size(), dist.rank()
    for epoch in range(state.epoch + 1, cfg.epochs):
        scale = 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))  # cosine schedule
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * scale
        lr = cfg.lr * scale
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(train_idx)
        passes = _draw_passes(inputs, mods, seed, epoch)
        model.train()
        total = 0.0
        with seeded(seed * 100_003 + epoch * 7 + rank):
            for start in range(0, len(order), cfg.batch_size):
                global_batch = order[start : start + cfg.batch_size]
                if len(global_batch) < 2:
                    continue
                mine = global_batch[rank::world]
                if augment is not None:  # augment on the CPU, then move
                    batch = augment(inputs.batch(mine, mods, torch.device("cpu")), rng)
                    batch = {k: v.to(device) for k, v in batch.items()}
                else:
                    batch = inputs.batch(mine, mods, device, {m: d[mine] for m, d in passes.items()})
                logits = ddp_model(batch)
                loss = _loss_fn(logits, batch["label"], pos_weight, len(global_batch) / world)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(global_batch) / world
        val_loss, val_auc = _validate(model, inputs, val_idx, pos_weight, compute, cfg.batch_size)
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": total / max(len(order), 1),
            "val_loss": val_loss,
            "val_auc": val_auc,
        }
        state.history.append(record)
        if val_loss < state.best_val_loss - 1e-6:
            state.best_val_loss, state.best_epoch = val_loss, epoch
            state.best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            state.bad_epochs = 0
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        stop = epoch + 1 >= cfg.min_epochs and state.bad_epochs >= cfg.patience
        if on_epoch is not None:
            on_epoch(epoch, record)
        if ckpt_dir is not None and (stop or epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs - 1):
            _save(ckpt_dir, model, opt, state)
        if stop:
            break
    if state.best is not None:
        model.load_state_dict(state.best)
    state.done = True
    if ckpt_dir is not None:
        _save(ckpt_dir, model, opt, state)
    return state.result()


def _standardizer_passes(inputs: PatientInputs) -> dict[str, np.ndarray] | None:
    import os

    return inputs.augmented if os.environ.get("RADIOPATH_STD_AUG") == "1" else None


def _draw_passes(inputs: PatientInputs, mods: list[str], seed: int, epoch: int) -> dict[str, np.ndarray]:
    """Per image modality with augmented passes, each patient's pass this epoch (0: clean)."""
    n = inputs.n_passes
    if n == 0:
        return {}
    rng = np.random.default_rng([seed, epoch, 0xA06])
    return {m: rng.integers(0, n + 1, len(inputs)) for m in mods if m in inputs.augmented}


@torch.inference_mode()
def _validate(
    model: RadiopathModel,
    inputs: PatientInputs,
    val_idx: np.ndarray,
    pos_weight: float,
    compute: ComputePlan,
    batch_size: int,
) -> tuple[float, float]:
    """Class-weighted loss and AUC on the inner validation patients (in batches)."""
    model.eval()
    logits = []
    for start in range(0, len(val_idx), batch_size):
        batch = inputs.batch(val_idx[start : start + batch_size], list(model.spec.modalities), compute.device)
        logits.append(model(batch).float())
    z = torch.cat(logits)
    y = torch.from_numpy(inputs.label[val_idx].astype(np.float32)).to(z.device)
    loss = float(_loss_fn(z, y, pos_weight, float(len(y))))
    yy = y.cpu().numpy()
    auc = float(roc_auc_score(yy, z.cpu().numpy())) if len(np.unique(yy)) == 2 else float("nan")
    return loss, auc


def predict(
    model: RadiopathModel,
    inputs: PatientInputs,
    index: np.ndarray,
    compute: ComputePlan,
    batch_size: int = 256,
) -> np.ndarray:
    """Probabilities for patients ``index`` (eval mode, no modality dropout)."""
    model.backbone_amp = compute.amp_dtype
    return predict_proba(model, inputs, index, compute.device, batch_size)


# --- checkpoint state -------------------------------------------------------------------------


@dataclass
class _State:
    epoch: int = -1
    best_epoch: int = -1
    best_val_loss: float = float("inf")
    bad_epochs: int = 0
    done: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, torch.Tensor] | None = None

    def result(self) -> FoldResult:
        return FoldResult(self.best_epoch, self.best_val_loss, self.epoch + 1, list(self.history))


def _save(ckpt_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, state: _State) -> None:
    """The loop state every epoch (atomic; fsync only for the final one); the best weights go
    to ``best.safetensors`` when they improve."""
    if dist.rank() != 0:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    durable = state.done
    if state.best is not None and (state.best_epoch == state.epoch or state.done):
        ckpt_io.save_tensors(ckpt_dir / ckpt_io.BEST, state.best, durable=durable)
    payload = {k: v for k, v in state.__dict__.items() if k != "best"}
    ckpt_io.save_training_state(ckpt_dir, model, opt, payload, durable=durable)


def has_checkpoint(ckpt_dir: Path) -> bool:
    return ckpt_io.has_training_state(ckpt_dir)


def _resume(ckpt_dir: Path, model: nn.Module, opt: torch.optim.Optimizer) -> _State:
    model_sd, optim_sd, loop = ckpt_io.load_training_state(ckpt_dir)
    state = _State(**loop)
    model.load_state_dict(model_sd)
    if (ckpt_dir / ckpt_io.BEST).exists():
        state.best = ckpt_io.load_tensors(ckpt_dir / ckpt_io.BEST)[0]
    if state.done:
        if state.best is not None:
            model.load_state_dict(state.best)
    else:
        opt.load_state_dict(optim_sd)
    return state
