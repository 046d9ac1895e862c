"""Grad-CAM and Grad-CAM++ on a backbone layer, for several heads from one forward pass.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017) weights a layer's activation maps ``A^k`` by the
spatial mean of the target's gradient, ``L = ReLU(Σ_k α_k A^k)``; Grad-CAM++ (Chattopadhay et
al., WACV 2018) weights positive gradients by ``α_ij = g² / (2g² + Σ_ab A_ab g³)``. The methods
themselves come from the ``grad-cam`` package (pytorch-grad-cam: ``get_cam_image`` and each
method's ``get_cam_weights``, unchanged).

What this module adds around them, in one line why: the package runs a forward pass per
target, but radiopath explains up to six targets on the same images (a fusion model, the
single-modality models, their randomised twins, two modalities), so :class:`LayerCapture`
shares one backbone pass: a forward hook turns the layer's output into a leaf that requires
gradients, and each target is backpropagated only through what follows the layer
(:func:`cam_maps`). With the default layer, the last block, that is the pooling and the head.
The maps are returned raw (ReLU, not min-max scaled per image as the package's ``__call__``
does), so tiles of one slide stay comparable for heatmaps and nuclear mass;
``tests/explain/test_gradcam.py`` pins them to the package's own ``__call__`` after its scaling.

Hooks are registered by :class:`LayerCapture` on ``__enter__`` and always removed on
``__exit__``; bf16 activations (autocast) are cast to fp32 before the weights are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

from radiopath.errors import ConfigError

#: CAM methods (the ``grad-cam`` package's classes, imported lazily: the package is slow to import).
METHODS: tuple[str, ...] = ("gradcam", "gradcam++")


@cache
def _method(name: str) -> Any:
    """A ``grad-cam`` method object used only for its ``get_cam_image`` (no hooks left on anything)."""
    if name not in METHODS:
        raise ConfigError(f"unknown CAM method '{name}'; choose one of {list(METHODS)}")
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[name]
    dummy = nn.Conv2d(1, 1, 1)
    method = cls(dummy, [dummy])
    method.activations_and_grads.release()  # we capture activations ourselves (LayerCapture)
    return method


class LayerCapture:
    """Capture a layer's output as a gradient leaf while a block of forward passes runs.

    ::

        with LayerCapture(backbone.layer("body.layer4.2")) as cap:
            pooled = backbone(x)              # cap.activations: [(B, C, h, w) leaf]
            logit = head(pooled)
            maps = cam_maps(cap.activations, logit.sum())

    Each forward through the layer appends one leaf. Parameters before the layer need no
    gradient (a frozen backbone stays frozen), so the forward costs what inference costs.
    """

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.activations: list[torch.Tensor] = []
        self._handle: Any = None

    def _hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ConfigError(
                f"the Grad-CAM layer must output (B, C, h, w) maps, got {type(output).__name__} "
                f"{getattr(output, 'shape', '')}; choose a convolutional block (--target-layer)"
            )
        leaf = output.detach().requires_grad_(True)
        self.activations.append(leaf)
        return leaf

    def __enter__(self) -> LayerCapture:
        self.activations = []
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def cam_maps(
    activations: Sequence[torch.Tensor],
    target: torch.Tensor,
    method: str = "gradcam",
    retain_graph: bool = True,
) -> np.ndarray:
    """Raw CAMs ``(N, h, w)`` float32 ≥ 0 of the scalar ``target`` on captured ``activations``.

    ``target`` is a sum over patients of each patient's own score, so every image's gradient
    is its patient's (images of different patients never interact in eval mode).
    """
    grads = torch.autograd.grad(target, list(activations), retain_graph=retain_graph, allow_unused=True)
    acts = np.concatenate([a.detach().float().cpu().numpy() for a in activations])
    g = np.concatenate(
        [
            (torch.zeros_like(a) if gr is None else gr).float().cpu().numpy()
            for a, gr in zip(activations, grads, strict=True)
        ]
    )
    if not len(acts):
        return np.zeros((0, 1, 1), np.float32)
    cam = _method(method).get_cam_image(None, None, None, acts, g, False)
    return np.maximum(cam, 0.0).astype(np.float32)
