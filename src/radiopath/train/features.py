"""Frozen-backbone features, extracted once and cached.

Every image the backbone sees (an ultrasound crop, or the tiles of one slide) gets a cache
key built from *everything* that determines its features: the backbone and its weights, the
input size and precision, the preprocessing (the ultrasound transform's full state, the
tiling and stain options) and the image itself (file content for ultrasound, file identity
plus tile coordinates for slides). A second run — another model, another seed, another
fusion — reuses the cache; any change of input or option misses it. Entries are ``.npy``
files written atomically, so concurrent ranks and crashed runs never leave a bad entry.

Extraction runs batched under ``inference_mode`` with channels_last and, where the
processor supports it, bf16 autocast (:mod:`radiopath.train.device`); the next batch's
images are prepared on a thread while the current batch runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from radiopath.io.atomic import atomic_path
from radiopath.models.backbones import Backbone, create_backbone
from radiopath.models.weights import NONE
from radiopath.models.weights import describe as describe_weights
from radiopath.train import distributed as dist
from radiopath.train.device import ComputePlan, seeded, stable_seed

Progress = Callable[[str, int, int], None]
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$RADIOPATH_CACHE`` or ``~/.cache/radiopath``."""
    return Path(os.environ.get("RADIOPATH_CACHE", Path.home() / ".cache" / "radiopath"))


def digest(*parts: object) -> str:
    """sha256 (hex, 32 chars) of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path, full: bool = True) -> str:
    """Content hash of a file (``full``), or of its identity and first/last MiB for big slides."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            if full or st.st_size <= 4 << 20:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
                h.update(str(st.st_size).encode())
        _FILE_DIGESTS[key] = h.hexdigest()[:32]
    return _FILE_DIGESTS[key]


class FeatureCache:
    """``.npy`` entries under ``root/features/<extractor>/<key[:2]>/<key>.npy``."""

    def __init__(self, root: str | Path, extractor_key: str) -> None:
        self.dir = Path(root) / "features" / extractor_key
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return np.load(p)
        except (OSError, ValueError):  # a damaged entry is a miss, recomputed and replaced
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.save(fh, value.astype(np.float32))


class FeatureExtractor:
    """A frozen backbone on a compute plan: uint8 images (N, S, S, 3) → features (N, D)."""

    def __init__(
        self,
        backbone: Backbone,
        compute: ComputePlan,
        batch_size: int = 32,
        compile: bool = False,
        weights_id: str = "none",
    ) -> None:
        self.compute = compute
        self.batch_size = batch_size
        self.backbone = backbone.eval().to(compute.device)
        if compute.channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.forward = self.backbone.forward_features
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            self.forward = torch.compile(self.backbone.forward_features, dynamic=False)
        self.weights_id = weights_id
        self.num_features = backbone.num_features

    def key(self, input_size: int) -> str:
        """Identity of the features this extractor produces at ``input_size``."""
        return digest(
            "extractor",
            CACHE_VERSION,
            self.backbone.name,
            self.weights_id,
            input_size,
            str(self.compute.amp_dtype),
        )[:20]

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.compute.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if self.compute.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.compute.autocast():
                out.append(self.forward(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.num_features), np.float32)


def make_extractor(
    backbone: str, weights: str, compute: ComputePlan, batch_size: int = 32, compile: bool = False
) -> FeatureExtractor:
    """A frozen ``backbone`` with ``weights`` (``none``, ``imagenet`` or a file) on ``compute``.

    Random weights (``none``) are drawn from a seed fixed by the backbone's name, so every
    process, every rank and every later run builds the same network: cached features stay
    valid, and two ranks extracting halves of a cohort produce features of one backbone.
    """
    if weights == NONE:
        seed = stable_seed(backbone, "random-init")
        with seeded(seed):
            net = create_backbone(backbone, weights)
        weights_id = f"{NONE}:seed={seed}"
    else:
        net, weights_id = create_backbone(backbone, weights), describe_weights(weights)
    return FeatureExtractor(net, compute, batch_size, compile, weights_id=weights_id)


@dataclass
class Item:
    """One unit of extraction: a cache key and how to produce its images."""

    key: str
    load: Callable[[], np.ndarray]  # → (n, S, S, 3) uint8


def extract_items(
    items: Sequence[Item],
    extractor: FeatureExtractor,
    cache: FeatureCache,
    progress: Progress | None = None,
    label: str = "features",
    chunk_images: int = 128,
) -> list[np.ndarray]:
    """Features of every item, from the cache or computed (and cached); in ``items`` order.

    Under torchrun each rank computes a strided share of the missing items, then all ranks
    read the cache.
    """
    missing = [i for i, it in enumerate(items) if not cache.path(it.key).exists()]
    cache.hits += len(items) - len(missing)
    cache.misses += len(missing)
    mine = [missing[i] for i in dist.shard(len(missing))]
    done = 0
    if progress:
        progress(label, 0, len(mine))
    with ThreadPoolExecutor(max_workers=1) as loader:
        batches = list(_group(mine, items, chunk_images))
        future = loader.submit(_load_group, batches[0], items) if batches else None
        for b, group in enumerate(batches):
            assert future is not None
            loaded = future.result()
            if b + 1 < len(batches):
                future = loader.submit(_load_group, batches[b + 1], items)
            flat = np.concatenate([arr for arr in loaded]) if loaded else np.zeros((0,))
            feats = extractor(flat) if len(flat) else np.zeros((0, extractor.num_features), np.float32)
            start = 0
            for i, arr in zip(group, loaded, strict=True):
                cache.put(items[i].key, feats[start : start + len(arr)])
                start += len(arr)
            done += len(group)
            if progress:
                progress(label, done, len(mine))
    dist.barrier()
    out = []
    for it in items:
        value = cache.get(it.key)
        if value is None:  # unreadable entry: recompute in place
            value = extractor(it.load())
            cache.put(it.key, value)
        out.append(value)
    return out


def _group(indices: list[int], items: Sequence[Item], chunk_images: int) -> Iterable[list[int]]:
    group: list[int] = []
    for i in indices:
        group.append(i)
        if len(group) * 8 >= chunk_images:  # items hold 1 (view) to K (tiles) images
            yield group
            group = []
    if group:
        yield group


def _load_group(group: list[int], items: Sequence[Item]) -> list[np.ndarray]:
    return [items[i].load() for i in group]


def resize_tiles(tiles: np.ndarray, size: int) -> np.ndarray:
    """(K, S, S, 3) uint8 → (K, size, size, 3) with area averaging (no-op when equal)."""
    if tiles.shape[1] == size:
        return tiles
    return np.stack([cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in tiles])


def pad_instances(per_patient: list[np.ndarray | None], n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length (n_i, ...) arrays into (P, n_max, ...) plus a (P, n_max) mask."""
    first = next((a for a in per_patient if a is not None and len(a)), None)
    shape = first.shape[1:] if first is not None else (1,)
    dtype = first.dtype if first is not None else np.float32
    out = np.zeros((len(per_patient), n_max, *shape), dtype)
    mask = np.zeros((len(per_patient), n_max), bool)
    for i, arr in enumerate(per_patient):
        if arr is None or len(arr) == 0:
            continue
        n = min(len(arr), n_max)
        out[i, :n] = arr[:n]
        mask[i, :n] = True
    return out, mask


def tiles_by_patient(tiles: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a cohort tile table into per-patient tables, best tile first."""
    if tiles.empty:
        return {}
    order = "rank" if "rank" in tiles.columns else "score"
    asc = order == "rank"
    return {
        str(pid): g.sort_values(order, ascending=asc) for pid, g in tiles.groupby("patient_id", sort=False)
    }
