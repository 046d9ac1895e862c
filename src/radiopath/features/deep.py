"""The ``deep`` feature family: a frozen CNN backbone's pooled features of every image.

Every backbone pass has exactly ``batch_size`` images — the last batch is padded with blank
images — because convolution kernels (oneDNN on CPUs, cuDNN on GPUs) choose their algorithm
and reduction order by the batch shape: measured here, ResNet-101's fp32 features of one
image differ by up to 0.018 between a batch of 1 and a batch of 32, and on CPUs with native
bf16 they differ between any two batch sizes. With one fixed shape an image's features never
depend on what else is in the batch, on how many processes share the work, or on which
items were already cached.

Extraction runs under ``inference_mode`` with channels_last and, where the processor supports
it, bf16 autocast (:mod:`radiopath.compute`); the next batch's images are prepared on a thread
while the current batch runs.
"""

from __future__ import annotations

import numpy as np
import torch

from radiopath.compute import ComputePlan, seeded, stable_seed
from radiopath.io.fingerprint import digest, file_digest, source_digest
from radiopath.models.backbones import Backbone, check_backbone_name, create_backbone
from radiopath.models.weights import IMAGENET, NONE

#: Code whose changes change deep features (the modality preprocessing is in the group keys'
#: code version, see radiopath.features.cache).
DEEP_CODE = ("radiopath.features.deep", "radiopath.models.backbones", "radiopath.models.weights")


def weights_id(backbone: str, weights: str) -> str:
    """Stable identity of a weights choice: the random seed, ``imagenet``, or a file's content."""
    if weights == NONE:
        return f"{NONE}:seed={stable_seed(backbone, 'random-init')}"
    if weights == IMAGENET:
        return IMAGENET
    return f"file:{file_digest(weights)}"


def extractor_key(backbone: str, weights: str, input_size: int, compute: ComputePlan, batch_size: int) -> str:
    """Identity of the features a backbone produces — computable without building it."""
    return digest(
        "deep",
        source_digest(*DEEP_CODE),
        backbone,
        weights_id(backbone, weights),
        int(input_size),
        str(compute.amp_dtype),
        compute.device.type,
        int(batch_size),
    )[:20]


class FeatureExtractor:
    """A frozen backbone on a compute plan: uint8 images (N, S, S, 3) → features (N, D) float32."""

    def __init__(
        self,
        backbone: Backbone,
        compute: ComputePlan,
        batch_size: int = 16,
        compile: bool = False,
        weights: str = NONE,
    ) -> None:
        self.compute = compute
        self.batch_size = batch_size
        self.weights = weights
        self.backbone = backbone.eval().to(compute.device)
        if compute.channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.forward = self.backbone.forward
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            self.forward = torch.compile(self.backbone.forward, dynamic=False)
        self.num_features = backbone.num_features

    def key(self, input_size: int) -> str:
        """Identity of the features this extractor produces at ``input_size``."""
        return extractor_key(self.backbone.name, self.weights, input_size, self.compute, self.batch_size)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features of ``images`` (N, S, S, 3) uint8, in passes of exactly ``batch_size`` images."""
        n = len(images)
        out = np.zeros((n, self.num_features), np.float32)
        for start in range(0, n, self.batch_size):
            chunk = images[start : start + self.batch_size]
            real = len(chunk)
            if real < self.batch_size:  # pad: the pass has the same shape as every other
                pad = np.zeros((self.batch_size - real, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.compute.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if self.compute.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.compute.autocast():
                feats = self.forward(x)
            out[start : start + real] = feats[:real].float().cpu().numpy()
        return out


def make_extractor(
    backbone: str, weights: str, compute: ComputePlan, batch_size: int = 16, compile: bool = False
) -> FeatureExtractor:
    """A frozen ``backbone`` with ``weights`` (``none``, ``imagenet`` or a file) on ``compute``.

    Random weights (``none``) are drawn from a seed fixed by the backbone's name, so every
    process, every rank and every later run builds the same network: cached features stay
    valid, and two ranks extracting halves of a cohort produce features of one backbone.
    """
    check_backbone_name(backbone)
    if weights == NONE:
        with seeded(stable_seed(backbone, "random-init")):
            net = create_backbone(backbone, weights)
    else:
        net = create_backbone(backbone, weights)
    return FeatureExtractor(net, compute, batch_size, compile, weights=weights)
