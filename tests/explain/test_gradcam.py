"""Grad-CAM on a shared backbone pass: the maps of the ``grad-cam`` package, hooks released."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn

from radiopath.compute import seeded
from radiopath.errors import ConfigError
from radiopath.explain.gradcam import LayerCapture, cam_maps
from radiopath.models.backbones import create_backbone


class _Net(nn.Module):
    """A backbone and a linear head: one logit per image."""

    def __init__(self) -> None:
        super().__init__()
        with seeded(3):
            self.backbone = create_backbone("resnet18", "none").eval()
            self.head = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).squeeze(-1)


@pytest.fixture(scope="module")
def net() -> _Net:
    return _Net()


@pytest.mark.parametrize(
    ("name", "cls", "layer"),
    [
        ("gradcam", GradCAM, "body.layer4.1"),
        ("gradcam", GradCAM, "body.layer3"),
        ("gradcam++", GradCAMPlusPlus, "body.layer3"),
    ],
)
def test_maps_equal_the_packages_own_call(net: _Net, name: str, cls: type, layer: str) -> None:
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    signs = torch.tensor([1.0, -1.0, 1.0])
    target = net.backbone.layer(layer)
    with LayerCapture(target) as cap:
        logits = net(x)
        ours = cam_maps(cap.activations, (logits * signs).sum(), name)
    assert not target._forward_hooks  # released
    side = {"body.layer4.1": 2, "body.layer3": 4}[layer]
    assert ours.shape == (3, side, side) and (ours >= 0).all()

    class Signed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.net(x) * signs).unsqueeze(-1)

    with cls(Signed(), [target]) as cam:
        ref = cam(x, targets=[lambda o: o[0]] * 3)
    assert not target._forward_hooks
    mine = scale_cam_image(scale_cam_image(ours, (64, 64)))  # the package scales, resizes, scales again
    np.testing.assert_allclose(mine, ref, atol=2e-5)
    assert ref.std() > 0.05  # a real map, not a constant


def test_a_target_summed_over_patients_gives_each_image_its_own_map(net: _Net) -> None:
    """Images of different patients never mix: the map of a sum is each image's own map."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    layer = net.backbone.layer("body.layer3")
    peaks = []
    for sign in (1.0, -1.0):  # the map of one sign may be all zero (ReLU); the other is not
        with LayerCapture(layer) as cap:
            both = cam_maps(cap.activations, sign * net(x).sum())
        with LayerCapture(layer) as cap:
            first = cam_maps(cap.activations, sign * net(x[:1]).sum())
        np.testing.assert_allclose(both[:1], first, rtol=1e-3, atol=1e-6)
        peaks.append(float(first.max()))
    assert max(peaks) > 0


def test_bf16_autocast_activations_give_fp32_maps(net: _Net) -> None:
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with LayerCapture(net.backbone.layer()) as cap:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            f = net.backbone(x)
        logits = net.head(f.float()).squeeze(-1)
        maps = cam_maps(cap.activations, logits.sum())
    assert cap.activations[0].dtype == torch.bfloat16
    assert maps.dtype == np.float32 and maps.shape == (2, 2, 2) and np.isfinite(maps).all()


def test_hooks_are_released_when_the_forward_fails(net: _Net) -> None:
    layer = net.backbone.layer()
    with pytest.raises(RuntimeError), LayerCapture(layer):
        net(torch.rand(1, 5, 32, 32))  # wrong channels
    assert not layer._forward_hooks


def test_a_layer_without_maps_and_an_unknown_method_are_clear_errors(net: _Net) -> None:
    with pytest.raises(ConfigError, match="convolutional block"), LayerCapture(net.head):
        net(torch.rand(1, 3, 32, 32))
    with LayerCapture(net.backbone.layer()) as cap:
        y = net(torch.rand(1, 3, 32, 32)).sum()
    with pytest.raises(ConfigError, match="gradcam"):
        cam_maps(cap.activations, y, "scorecam")
    with pytest.raises(ConfigError, match=r"body\.layer3"):
        net.backbone.layer("body.layer9")
