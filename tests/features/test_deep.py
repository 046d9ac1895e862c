"""The deep feature family: one backbone per name in every process, and features of an image
that do not depend on what else is in its batch — in fp32 and in bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from radiopath.compute import cpu_bf16_supported, plan
from radiopath.features.deep import extractor_key, make_extractor, weights_id

FP32 = plan("cpu", "fp32", channels_last=False)


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_random_weights_are_the_same_backbone_in_every_process() -> None:
    """`weights: none` must not depend on the global RNG: ranks and later runs share a cache."""
    torch.manual_seed(1)
    a = make_extractor("resnet18", "none", FP32)
    torch.manual_seed(2)
    b = make_extractor("resnet18", "none", FP32)
    imgs = _images(3)
    fa, fb = a(imgs), b(imgs)
    assert fa.shape == (3, 512) and fa.dtype == np.float32
    np.testing.assert_array_equal(fa, fb)
    assert a.key(32) == b.key(32) and weights_id("resnet18", "none").startswith("none:seed=")
    # the global stream is left alone: what follows the build is what the caller seeded
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    make_extractor("resnet18", "none", FP32)
    assert torch.rand(1) == expected


def test_the_key_covers_everything_that_shapes_the_features() -> None:
    base = extractor_key("resnet18", "none", 32, FP32, 16)
    assert extractor_key("resnet34", "none", 32, FP32, 16) != base
    assert extractor_key("resnet18", "none", 64, FP32, 16) != base
    assert extractor_key("resnet18", "none", 32, plan("cpu", "bf16"), 16) != base
    assert extractor_key("resnet18", "none", 32, FP32, 8) != base  # the batch shape is part of it
    assert extractor_key("resnet18", "none", 32, FP32, 16) == base


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_features_do_not_depend_on_the_rest_of_the_batch(precision: str) -> None:
    """Regression: strided shares per rank and bf16 kernels made features batch-dependent.

    bf16 runs natively on CPUs with AVX-512 BF16 / AMX and emulated elsewhere; the guarantee
    (every pass has one fixed shape) must hold on both, so both run here.
    """
    compute = plan("cpu", precision, channels_last=True)
    ext = make_extractor("resnet18", "none", compute, batch_size=8)
    imgs = _images(19, seed=5)
    whole = ext(imgs)
    assert whole.shape == (19, 512) and np.isfinite(whole).all()
    for part in (slice(0, 1), slice(3, 12), slice(17, 19), slice(0, 19, 2)):
        np.testing.assert_array_equal(ext(imgs[part]), whole[part], err_msg=f"{precision} {part}")
    shuffled = np.random.default_rng(1).permutation(19)
    np.testing.assert_array_equal(ext(imgs[shuffled]), whole[shuffled])
    if precision == "bf16":
        fp32 = make_extractor("resnet18", "none", plan("cpu", "fp32"), batch_size=8)(imgs)
        assert 0 < np.abs(fp32 - whole).max() < 0.5 * np.abs(fp32).max()  # really bf16, still the same net
        print("native bf16:", cpu_bf16_supported())


def test_the_code_version_ignores_docstrings_and_comments_but_not_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radiopath.io.fingerprint import source_digest

    pkg = tmp_path / "codever_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "step.py"
    mod.write_text('"""Doc."""\n\ndef f(x):\n    """Say."""\n    return x + 1  # add one\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    base = source_digest("codever_pkg")
    mod.write_text(
        '"""Another doc."""\n\n\ndef f(x):\n    """Say more."""\n    # a new comment\n    return x + 1\n'
    )
    assert source_digest("codever_pkg") == base
    mod.write_text('"""Doc."""\n\ndef f(x):\n    return x + 2\n')
    plus_two = source_digest("codever_pkg")
    assert plus_two != base
    # the parse is memoised per file version: an edit of the same size is still seen
    mod.write_text('"""Doc."""\n\ndef f(x):\n    return x + 3\n')
    assert source_digest("codever_pkg") not in (plus_two, base)
