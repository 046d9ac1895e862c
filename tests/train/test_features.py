"""The frozen-feature path: one backbone per name in every process, and a cache that is reused
only when nothing that shapes the features changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from radiopath.train.device import plan
from radiopath.train.features import FeatureCache, Item, extract_items, make_extractor

COMPUTE = plan("cpu", "fp32", channels_last=False)


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_random_weights_are_the_same_backbone_in_every_process() -> None:
    """`weights: none` must not depend on the global RNG: ranks and later runs share a cache."""
    torch.manual_seed(1)
    a = make_extractor("resnet18", "none", COMPUTE)
    torch.manual_seed(2)
    b = make_extractor("resnet18", "none", COMPUTE)
    imgs = _images(3)
    fa, fb = a(imgs), b(imgs)
    assert fa.shape == (3, 512)
    np.testing.assert_array_equal(fa, fb)
    assert a.key(32) == b.key(32) and a.weights_id.startswith("none:seed=")
    # the global stream is left alone: what follows the build is what the caller seeded
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    make_extractor("resnet18", "none", COMPUTE)
    assert torch.rand(1) == expected
    # another backbone, another input size: another cache
    assert make_extractor("resnet34", "none", COMPUTE).key(32) != a.key(32)
    assert a.key(64) != a.key(32)


def test_extraction_fills_the_cache_once_and_recovers_a_damaged_entry(tmp_path: Path) -> None:
    ext = make_extractor("resnet18", "none", COMPUTE, batch_size=4)
    cache = FeatureCache(tmp_path, ext.key(32))
    loads: list[str] = []

    def item(key: str, n: int, seed: int) -> Item:
        def load() -> np.ndarray:
            loads.append(key)
            return _images(n, seed=seed)

        return Item(key, load)

    items = [item("a", 2, 0), item("b", 5, 1), item("c", 1, 2)]
    first = extract_items(items, ext, cache)
    assert [f.shape for f in first] == [(2, 512), (5, 512), (1, 512)]
    np.testing.assert_allclose(first[1], ext(_images(5, seed=1)), rtol=1e-5, atol=1e-5)
    assert (cache.misses, cache.hits) == (3, 0) and sorted(loads) == ["a", "b", "c"]

    loads.clear()
    again = extract_items(items, ext, cache)
    assert loads == [] and (cache.misses, cache.hits) == (3, 3)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)

    cache.path("b").write_bytes(b"not an array")  # a torn or corrupted entry
    loads.clear()
    healed = extract_items(items, ext, cache)
    assert loads == ["b"]
    np.testing.assert_allclose(healed[1], first[1], rtol=1e-5, atol=1e-5)
    assert np.load(cache.path("b")).shape == (5, 512)
