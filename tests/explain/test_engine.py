"""The explanation engine on a model whose answer is known: evidence = nuclear darkness.

A toy backbone whose first channel is the darkness of each pixel (nuclei are the darkest
things on an LBC slide) and a head that reads only that channel must get a Grad-CAM on the
nuclei — nuclear enrichment well above 1 on tiles of a synthetic slide with known nuclei —
while a head with random weights over the other channels must not; and removing the tiles
the map ranks first must lower the score more than removing random ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from radiopath.compute import plan, seeded
from radiopath.explain.cases import Case
from radiopath.explain.engine import Explainer, Member, Target
from radiopath.explain.nuclear import TileNuclei, nuclear_focus, tile_nuclei
from radiopath.models.backbones import Backbone
from radiopath.models.model import RadiopathModel
from radiopath.run_config import HeadConfig, ModelSpec
from radiopath.synth.cytology import render_slide_with_nuclei
from radiopath.synth.phenotype import cells_from_latent
from radiopath.synth.spec import default_centers

SIZE = 96


def _backbone() -> Backbone:
    conv = nn.Conv2d(3, 4, 1)
    with torch.no_grad(), seeded(0):
        conv.weight.normal_(0, 1)
        conv.bias.normal_(0, 0.3)
        conv.weight[0] = -1.0 / 3  # channel 0: darkness, 0.75 - mean RGB
        conv.bias[0] = 0.75
    body = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4))  # a 24x24 map per 96-px tile
    return Backbone(body, 4, "toy", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "body.2").eval()


def _head(darkness_only: bool) -> RadiopathModel:
    head = HeadConfig(dim=4, pca_dim=None, dropout=0.0, cytology_pooling="mean")
    with seeded(1):
        model = RadiopathModel(
            ModelSpec(name="cytology", modalities=["cytology"], fusion="none"), head, {"cytology": 4}
        )
    if darkness_only:
        with torch.no_grad():
            proj = model.encoders["cytology"].project[1]
            proj.weight.zero_()
            proj.bias.zero_()
            proj.weight[0, 0] = 4.0
            out = model.fusion.head[1]
            out.weight.zero_()
            out.weight[0, 0] = 1.0
            out.bias.fill_(-0.5)
    return model.eval()


def _case() -> tuple[Case, TileNuclei, TileNuclei]:
    center = default_centers()[1]
    rng = np.random.default_rng(2)
    image, truth = render_slide_with_nuclei(cells_from_latent(0.8, rng), center, 400, rng)
    # the 6 windows with the most nuclei, at the slide's own resolution
    n = image.shape[0] // SIZE
    windows = [(y, x) for y in range(n) for x in range(n)]
    windows.sort(
        key=lambda w: -truth.mask[w[0] * SIZE : (w[0] + 1) * SIZE, w[1] * SIZE : (w[1] + 1) * SIZE].sum()
    )
    tiles = np.stack([image[y * SIZE : (y + 1) * SIZE, x * SIZE : (x + 1) * SIZE] for y, x in windows[:6]])
    true = np.stack(
        [truth.mask[y * SIZE : (y + 1) * SIZE, x * SIZE : (x + 1) * SIZE] for y, x in windows[:6]]
    )
    case = Case(row=0, patient_id="P1", cohort="external", center="B", label=1.0, fold=-1)
    case.images["cytology"] = case.native["cytology"] = tiles
    case.slots["cytology"] = np.arange(6)
    return case, tile_nuclei(tiles, center.mpp), TileNuclei(true, np.ones(6, int))


def test_a_model_that_reads_darkness_is_explained_on_the_nuclei() -> None:
    compute = plan("cpu", "fp32", channels_last=False)
    bb = _backbone()
    trained = Target("cytology", "cytology", ["cytology"], [Member(0, _head(True), {"cytology": bb})], 0.0)
    twin = Target(
        "cytology:randomized",
        "cytology",
        ["cytology"],
        [Member(0, _head(False), {"cytology": bb})],
        0.0,
        "cytology",
        False,
    )
    explainer = Explainer(
        [twin, trained],
        compute,
        layers={"cytology": "body.2"},
        n_max={"cytology": 8},
        batch_size=4,
        random_draws=8,
    )
    case, seg, true = _case()
    out = explainer.explain([case])
    r, rt = out["cytology"][0], out["cytology:randomized"][0]
    assert r.sign == 1 and rt.sign == 1  # the twin explains the trained model's class
    assert r.cams["cytology"].shape == (6, 24, 24)
    for nuclei in (seg, true):  # the project's segmentation and the slide's true nuclei agree
        e, e_twin = (
            nuclear_focus(r.cams["cytology"], nuclei).enrichment,
            nuclear_focus(rt.cams["cytology"], nuclei).enrichment,
        )
        assert e > 2.0 and e > e_twin + 0.5, (e, e_twin)
    # the probability is the model's own on these tiles
    with torch.no_grad():
        x = torch.from_numpy(case.images["cytology"]).permute(0, 3, 1, 2).float() / 255
        feats = bb(x).unsqueeze(0)
        p = torch.sigmoid(
            trained.members[0].head({"cytology": feats, "cytology_mask": torch.ones(1, 6, dtype=torch.bool)})
        )
    assert abs(r.prob - float(p)) < 1e-6
    # mean pooling: equal attention; deletion by CAM mass removes the darkest tiles first
    np.testing.assert_allclose(r.attention["cytology"], 1 / 6, atol=1e-6)
    curve = r.tile_deletion
    assert curve["cam"][0] == curve["random"][0] == r.prob
    assert curve["cam"][1:].mean() < curve["random"][1:].mean()
