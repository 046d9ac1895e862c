"""Benchmark: radiopath's feature extraction against a plain fp32 torchvision eval loop, in one run.

Both paths run the same backbone (ResNet-101 by default, random weights — nothing is
downloaded) on the same uint8 images and must produce the same features (checked):

* plain: ``model.eval()``, ``torch.no_grad()``, NCHW fp32 batches built with torchvision's
  ``ToTensor`` + ``Normalize`` per image, as most code does;
* radiopath: :class:`radiopath.features.deep.FeatureExtractor` — uint8 batches converted in
  one tensor op, ``inference_mode``, channels_last, bf16 autocast where the processor has
  native bf16 (AVX-512 BF16 / AMX / CUDA), optional ``torch.compile`` with inductor freezing,
  and every pass padded to the same batch shape (features independent of the batch).

Prints images/s for both and the ratio. Never part of the test run.

    .venv/bin/python benchmarks/bench_features.py                  # 224 px, 128 images
    .venv/bin/python benchmarks/bench_features.py --size 112 --compile
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision.transforms as T

from radiopath.compute import plan
from radiopath.features.deep import FeatureExtractor
from radiopath.models.backbones import IMAGENET_MEAN, IMAGENET_STD, create_backbone


def plain_loop(model: torch.nn.Module, images: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    tf = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    model.eval()
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.stack([tf(img) for img in images[i : i + batch]])
            out.append(model(x).mean(dim=(2, 3)).numpy())
    return np.concatenate(out), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (+ inductor freezing)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    backbone = create_backbone(args.backbone, "none").eval()
    compute = plan("auto", "auto", channels_last=True)
    print(
        f"{args.backbone} at {args.size}px, {args.images} images, batch {args.batch}, "
        f"{torch.get_num_threads()} threads; radiopath compute: {compute.describe()}"
    )

    # plain: the torchvision trunk as users write it (normalisation inside the transform, NCHW fp32)
    plain_model = backbone.body
    plain_loop(plain_model, images[: args.batch], args.batch)  # warm-up
    ref, t_plain = plain_loop(plain_model, images, args.batch)
    print(f"plain fp32 eval loop : {args.images / t_plain:7.1f} images/s")

    ours = FeatureExtractor(backbone, compute, batch_size=args.batch)
    ours(images[: args.batch])
    start = time.perf_counter()
    feats = ours(images)
    t_ours = time.perf_counter() - start
    err = float(np.abs(feats - ref).max() / (np.abs(ref).max() + 1e-12))
    print(
        f"radiopath            : {args.images / t_ours:7.1f} images/s   ratio {t_plain / t_ours:4.2f}x   "
        f"(max relative difference {err:.1e})"
    )
    if args.compile:
        start = time.perf_counter()
        compiled = FeatureExtractor(
            create_backbone(args.backbone, "none").eval(), compute, batch_size=args.batch, compile=True
        )
        compiled.backbone.load_state_dict(backbone.state_dict())
        compiled(images[: args.batch])
        t_compile = time.perf_counter() - start
        start = time.perf_counter()
        compiled(images)
        t_c = time.perf_counter() - start
        saved_per_image = (t_ours - t_c) / args.images
        payoff = (
            f"pays off after {t_compile / saved_per_image:.0f} images"
            if saved_per_image > 0
            else "never pays off"
        )
        print(
            f"radiopath + compile  : {args.images / t_c:7.1f} images/s   ratio {t_plain / t_c:4.2f}x   "
            f"(compile {t_compile:.0f} s; {payoff})"
        )


if __name__ == "__main__":
    main()
