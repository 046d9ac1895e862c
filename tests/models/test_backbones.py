"""Backbone registry: every entry builds, runs, and loads weights without unpickling code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from radiopath.errors import ConfigError
from radiopath.models import BACKBONES, create_backbone
from radiopath.models import weights as W

DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_splits_unpooled_features_from_the_pooling_head(name: str) -> None:
    torch.manual_seed(0)
    bb = create_backbone(name, "none").eval()
    assert bb.num_features == DIMS[name]
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        fmap = bb.forward_features(x)
        pooled = bb.forward_head(fmap)
        f = bb(x)
    assert fmap.shape == (2, DIMS[name], 2, 2)  # stride 32: the last stage's map, unpooled
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(f, pooled)
    assert f.shape == (2, DIMS[name]) and torch.isfinite(f).all()
    assert not torch.allclose(f[0], f[1])  # different images, different features
    # the Grad-CAM target is the last convolutional block, and it is what forward_features returns
    seen = {}
    handle = bb.layer().register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    with torch.inference_mode():
        bb.forward_features(x)
    handle.remove()
    torch.testing.assert_close(seen["out"], fmap)
    assert bb.target_layer.startswith("body.layer4.") and bb.target_layer in bb.layer_names()
    assert all(bb.layer(n) is not None for n in bb.layer_names())
    with pytest.raises(ConfigError, match=r"body\.layer3"):
        bb.layer("body.nope")


def test_each_backbone_carries_its_input_normalisation() -> None:
    bb = create_backbone("resnet18", "none").eval()
    torch.testing.assert_close(bb.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(bb.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        direct = bb.body((x - bb.mean) / bb.std)
        torch.testing.assert_close(bb.forward_features(x), direct)


def test_weights_from_safetensors_and_state_dict_files(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = create_backbone("resnet18", "none")
    sd = {k: v.contiguous() for k, v in src.body.state_dict().items()}
    save_file(sd, str(tmp_path / "r18.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "r18.pth")
    for f in ("r18.safetensors", "r18.pth"):
        torch.manual_seed(99)  # a different random init, overwritten by the file
        loaded = create_backbone("resnet18", str(tmp_path / f))
        for k, v in loaded.body.state_dict().items():
            assert torch.equal(v, sd[k]), (f, k)


def test_pickled_modules_are_refused(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled object, not a state dict
    with pytest.raises(ConfigError, match="never unpickles"):
        create_backbone("resnet18", str(tmp_path / "module.pth"))


def test_weights_of_another_architecture_are_named(tmp_path: Path) -> None:
    sd = {k: v.contiguous() for k, v in create_backbone("resnet18", "none").body.state_dict().items()}
    save_file(sd, str(tmp_path / "r18.safetensors"))
    with pytest.raises(ConfigError, match="does not fit the backbone"):
        create_backbone("resnet50", str(tmp_path / "r18.safetensors"))


def test_imagenet_offline_is_a_clear_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached here
    monkeypatch.setattr(W, "_online", lambda url, timeout=3.0: False)
    with pytest.raises(ConfigError) as info:
        create_backbone("resnet101", "imagenet")
    msg = str(info.value)
    assert "--weights PATH" in msg and "--weights none" in msg


def test_unknown_backbone_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match="resnet101"):
        create_backbone("resnet99", "none")
    with pytest.raises(ConfigError, match="does-not-exist"):
        create_backbone("timm:does-not-exist", "none")
