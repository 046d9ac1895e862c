"""Explaining cases: one backbone pass per network, then every model's maps and checks from it.

For a chunk of :class:`~radiopath.explain.cases.Case` objects, each distinct backbone runs once
per image modality (ultrasound crops, cytology tiles) with the Grad-CAM layer captured
(:class:`~radiopath.explain.gradcam.LayerCapture`), in the run's precision (autocast) and in
passes of exactly ``train.extract_batch_size`` images (padded), as feature extraction runs,
so the features equal the cached ones the run was trained and scored on. Then, for each
:class:`Target` (a model of the run, or its randomised twin):

* its fold models finish the forward from those features (``RadiopathModel.forward_head``:
  the fold's own standardisation and projection, encoders, fusion) in fp32. Features mode
  feeds each case's :class:`~radiopath.explain.cases.ScoredInput` — the input the run scored,
  every feature family, after harmonisation — with the backbone's features entering its deep
  columns through the center's harmonisation slope: the input is
  ``scored + (f - f_run) · scale``, where ``f_run`` is the run's own backbone's features of the
  same images, so a trained model's forward is exactly its scored input and its gradient is
  that of the deep block, the handcrafted blocks held at their values (a randomised twin's
  backbone gives ``f ≠ f_run``; a handcrafted-only modality is held fixed whole); a development
  patient counts only its out-of-fold model, any other patient the mean of all folds, so the
  probability is the one in ``predictions.parquet``;
* the explained score is the logit of the predicted class (LNM when the ensemble probability
  reaches the frozen threshold, no LNM otherwise), summed over the fold models with those
  weights. Features mode: the fold models share the frozen backbone, so each modality's map
  is the Grad-CAM of that weighted mean logit. Finetune mode: each fold model has its own
  backbone, so each fold's map is computed on its own backbone and the maps are added with
  the fold weights (explain each fold model and average). Gradients reach every modality
  in one model, each with the other modalities at their actual values (held fixed);
* tile attention (the MIL pooling weights, fold-weighted), tile-deletion curves (the
  patient's tiles removed from the bag best-first by CAM mass, by attention, or at random),
  ultrasound region deletion (the top CAM pixels of each view blurred away, against random
  regions of the CAM's own grain) and the probability with each modality masked (the
  learned missing-modality embedding) — from the same features, with no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from radiopath.compute import ComputePlan, stable_seed
from radiopath.explain.cases import Case
from radiopath.explain.gradcam import LayerCapture, cam_maps
from radiopath.models.backbones import Backbone
from radiopath.models.model import RadiopathModel

#: Shares of each ultrasound view's pixels blurred away in the region-deletion check.
US_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5)


@dataclass
class Member:
    """One fold model of a target and the backbone of each of its image modalities."""

    fold: int
    head: RadiopathModel
    backbones: dict[str, Backbone]


@dataclass
class Target:
    """What is explained: a model of the run (its fold models) or that model's randomised twin.

    ``sign_of`` names the target whose predicted class a twin explains (its own decisions
    are noise), so a trained model and its twin are asked the same question.
    """

    key: str
    model: str
    modalities: list[str]
    members: list[Member]
    threshold: float
    sign_of: str | None = None
    checks: bool = True  # deletion and modality contribution (off for twins)


@dataclass
class CaseResult:
    """One target's explanation of one case (arrays per modality, instances in slot order)."""

    prob: float
    fold_probs: list[float]
    sign: int
    cams: dict[str, np.ndarray] = field(default_factory=dict)  # (n, h, w) raw Grad-CAM
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # (n,) pooling weights
    tile_deletion: dict[str, np.ndarray] = field(default_factory=dict)  # order -> (K,) scores
    us_deletion: dict[str, np.ndarray] = field(default_factory=dict)  # order -> (1 + fractions,)
    without: dict[str, float] = field(default_factory=dict)  # modality -> prob with it masked


@dataclass
class _Flat:
    """A modality's present instances of a chunk: images and where each belongs."""

    images: np.ndarray  # (N, s, s, 3) uint8
    owner: np.ndarray  # (N,) case index within the chunk
    slot: np.ndarray  # (N,) slot within the case
    n_max: int


class Explainer:
    """Runs :class:`Target` objects on chunks of cases (see the module docstring)."""

    def __init__(
        self,
        targets: Sequence[Target],
        compute: ComputePlan,
        *,
        layers: dict[str, str],
        n_max: dict[str, int],
        method: str = "gradcam",
        batch_size: int = 16,
        random_draws: int = 4,
        seed: int = 0,
        us_fractions: Sequence[float] = US_FRACTIONS,
        reference: dict[str, Backbone] | None = None,
    ) -> None:
        """``reference``: features mode, the run's own backbone per image modality (the one whose
        features the cases' :attr:`~radiopath.explain.cases.Case.scored` inputs hold)."""
        self.reference = dict(reference or {})
        self.targets = sorted(targets, key=lambda t: t.sign_of is not None)  # twins last
        self.compute = compute
        self.layers = layers
        self.n_max = n_max
        self.method = method
        self.batch_size = batch_size
        self.random_draws = random_draws
        self.seed = seed
        self.us_fractions = tuple(us_fractions)

    # -- backbone passes ----------------------------------------------------------------------

    def _to_input(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.compute.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=torch.channels_last) if self.compute.channels_last else x

    def _backbone(
        self, backbone: Backbone, images: np.ndarray, layer: str | None
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, int]]]:
        """Pooled features (N, D) fp32 and, with ``layer``, the captured leaves with their real rows."""
        feats, leaves = [], []
        bs = self.batch_size
        for start in range(0, len(images), bs):
            chunk = images[start : start + bs]
            real = len(chunk)
            if real < bs:  # the shape feature extraction used, so the features are the cached ones
                chunk = np.concatenate([chunk, np.zeros((bs - real, *chunk.shape[1:]), chunk.dtype)])
            x = self._to_input(chunk)
            if layer is None:
                with torch.inference_mode(), self.compute.autocast():
                    f = backbone(x)
                feats.append(f[:real].float().clone())
                continue
            with LayerCapture(backbone.layer(layer)) as cap, self.compute.autocast():
                f = backbone(x)
            feats.append(f[:real].float())
            leaves.append((cap.activations[0], real))
        return torch.cat(feats), leaves

    # -- the chunk ------------------------------------------------------------------------------

    def explain(self, cases: Sequence[Case]) -> dict[str, list[CaseResult]]:
        """Every target's :class:`CaseResult` for each of ``cases`` (in order)."""
        flats = self._flatten(cases)
        self._occluded: dict[tuple[object, ...], torch.Tensor] = {}
        passes: dict[tuple[int, str], tuple[torch.Tensor, list[tuple[torch.Tensor, int]]]] = {}
        for t in self.targets:
            for mem in t.members:
                for m in t.modalities:
                    bb = mem.backbones.get(m)
                    if bb is not None and m in flats and (id(bb), m) not in passes:
                        passes[(id(bb), m)] = self._backbone(bb, flats[m].images, self.layers[m])
        self._passes = passes
        self._reference = {
            m: (passes[(id(bb), m)] if (id(bb), m) in passes else self._backbone(bb, flats[m].images, None))[
                0
            ].detach()
            for m, bb in self.reference.items()
            if m in flats
        }
        out: dict[str, list[CaseResult]] = {}
        signs: dict[str, np.ndarray] = {}
        for t in self.targets:
            out[t.key], signs[t.key] = self._target(t, cases, flats, passes, signs)
        return out

    def _flatten(self, cases: Sequence[Case]) -> dict[str, _Flat]:
        flats: dict[str, _Flat] = {}
        for m in self.n_max:
            imgs, owner, slot = [], [], []
            for i, c in enumerate(cases):
                if c.has(m) and m in c.images:
                    imgs.append(c.images[m])
                    owner += [i] * len(c.images[m])
                    slot += list(c.slots[m])
            if imgs:
                flats[m] = _Flat(np.concatenate(imgs), np.array(owner), np.array(slot), self.n_max[m])
        return flats

    def _weights(self, t: Target, cases: Sequence[Case]) -> np.ndarray:
        """(P, F): each case's weight on each fold model (out-of-fold one-hot, else the mean)."""
        folds = np.array([m.fold for m in t.members])
        w = np.zeros((len(cases), len(folds)))
        for i, c in enumerate(cases):
            hit = folds == c.fold
            w[i] = hit if c.fold >= 0 and hit.any() else 1.0 / len(folds)
        return w

    def _batch(
        self,
        t: Target,
        mem: Member,
        cases: Sequence[Case],
        flats: dict[str, _Flat],
        feats: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """A forward_head batch: per modality the model input and the mask (module docstring)."""
        dev = self.compute.device
        p = len(cases)
        batch: dict[str, torch.Tensor] = {}
        for m in t.modalities:
            if cases and m in cases[0].scored:  # features mode: the scored input
                values = torch.from_numpy(np.stack([c.scored[m].values for c in cases])).to(dev)
                mask = torch.from_numpy(np.stack([c.scored[m].mask for c in cases])).to(dev)
                if m in feats and m in self._reference:
                    values = values + self._placed(m, cases, flats[m], feats[m] - self._reference[m], values)
                batch[m], batch[f"{m}_mask"] = values, mask
            elif m in self.n_max:
                n_max = self.n_max[m]
                mask = torch.zeros(p, n_max, dtype=torch.bool, device=dev)
                if m in flats:
                    f = flats[m]
                    grid = torch.zeros(p, n_max, feats[m].shape[1], device=dev)
                    idx = (torch.from_numpy(f.owner).to(dev), torch.from_numpy(f.slot).to(dev))
                    grid = grid.index_put(idx, feats[m])
                    mask[idx] = True
                else:
                    grid = torch.zeros(p, n_max, mem.backbones[m].num_features, device=dev)
                batch[m], batch[f"{m}_mask"] = grid, mask
            else:
                vals = np.stack([c.vectors[m][0] for c in cases]).astype(np.float32)
                batch[m] = torch.from_numpy(vals).to(dev)
                batch[f"{m}_mask"] = torch.tensor([c.vectors[m][1] for c in cases], device=dev)
        return batch

    def _placed(
        self, m: str, cases: Sequence[Case], f: _Flat, change: torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        """``change`` (N, d) of the backbone's features of the flat instances ``f``, as the change
        of the model input shaped ``like`` (P, n_max, D): in the deep columns, times each case's
        harmonisation slope (features mode), or the whole vector (finetune mode)."""
        dev = like.device
        scored = [c.scored.get(m) for c in cases]
        if all(s is not None for s in scored):
            deep = scored[0].deep  # type: ignore[union-attr]
            if deep is None:
                return torch.zeros_like(like)
            start, stop = deep
            scale = torch.from_numpy(np.stack([s.scale for s in scored])).to(dev)  # type: ignore[union-attr]
            change = change * scale[torch.from_numpy(f.owner).to(dev)]
        else:
            start, stop = 0, like.shape[-1]
        idx = (torch.from_numpy(f.owner).to(dev), torch.from_numpy(f.slot).to(dev))
        grid = torch.zeros(*like.shape[:2], stop - start, device=dev).index_put(idx, change)
        p, n = like.shape[:2]
        return torch.cat([like.new_zeros(p, n, start), grid, like.new_zeros(p, n, like.shape[-1] - stop)], -1)

    def _target(
        self,
        t: Target,
        cases: Sequence[Case],
        flats: dict[str, _Flat],
        passes: dict[tuple[int, str], tuple[torch.Tensor, list[tuple[torch.Tensor, int]]]],
        signs: dict[str, np.ndarray],
    ) -> tuple[list[CaseResult], np.ndarray]:
        w = self._weights(t, cases)
        wt = torch.from_numpy(w).float().to(self.compute.device)
        logits, batches, attention = [], [], {}
        for j, mem in enumerate(t.members):
            feats = {m: passes[(id(bb), m)][0] for m, bb in mem.backbones.items() if (id(bb), m) in passes}
            batch = self._batch(t, mem, cases, flats, feats)
            logits.append(mem.head.forward_head(batch))
            batches.append(batch)
            for m, a in mem.head.last_instance_weights.items():
                attention[m] = attention.get(m, 0) + a.cpu().numpy() * w[:, j : j + 1]
        logit = torch.stack(logits, 1)  # (P, F)
        fold_p = torch.sigmoid(logit.detach()).double().cpu().numpy()
        prob = (fold_p * w).sum(1)
        sign = signs[t.sign_of] if t.sign_of else np.where(prob >= t.threshold, 1, -1)
        score = (logit * wt * torch.from_numpy(sign).float().to(wt.device).unsqueeze(1)).sum()
        maps: dict[str, np.ndarray] = {}
        for m in flats:
            seen: set[int] = set()
            for mem in t.members:
                bb = mem.backbones.get(m)
                if bb is None or id(bb) in seen or (id(bb), m) not in passes:
                    continue
                seen.add(id(bb))
                leaves = passes[(id(bb), m)][1]
                cam = cam_maps([leaf for leaf, _ in leaves], score, self.method)
                bs = self.batch_size
                cam = np.concatenate([cam[k * bs : k * bs + real] for k, (_, real) in enumerate(leaves)])
                maps[m] = maps[m] + cam if m in maps else cam
        results = []
        for i in range(len(cases)):
            r = CaseResult(float(prob[i]), [float(v) for v in fold_p[i]], int(sign[i]))
            for m, f in flats.items():
                sel = f.owner == i
                if m in maps and sel.any():
                    r.cams[m] = maps[m][sel]
                if m in attention and sel.any():
                    r.attention[m] = np.asarray(attention[m][i, f.slot[sel]], np.float64)
            results.append(r)
        if t.checks:
            detached = [{k: v.detach() for k, v in b.items()} for b in batches]
            self._tile_deletion(t, cases, flats, detached, w, sign, results)
            self._us_deletion(t, cases, flats, detached, w, sign, results)
            self._contribution(t, cases, detached, w, results)
        return results, sign

    # -- checks (no gradient) -------------------------------------------------------------------

    @torch.no_grad()
    def _prob(self, t: Target, batches: list[dict[str, torch.Tensor]], w: np.ndarray) -> np.ndarray:
        """Fold-weighted probability of ``batches`` (one per member, rows aligned with ``w``)."""
        p = np.zeros(len(w))
        for j, (mem, b) in enumerate(zip(t.members, batches, strict=True)):
            p += torch.sigmoid(mem.head.forward_head(b)).double().cpu().numpy() * w[:, j]
        return p

    def _repeat(self, batch: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(rows).to(self.compute.device)
        return {k: v.index_select(0, idx).clone() for k, v in batch.items()}

    def _tile_deletion(
        self,
        t: Target,
        cases: Sequence[Case],
        flats: dict[str, _Flat],
        batches: list[dict[str, torch.Tensor]],
        w: np.ndarray,
        sign: np.ndarray,
        results: list[CaseResult],
    ) -> None:
        """Remove a case's tiles from the bag best-first (k = 0 … n-1) by CAM mass, attention
        or at random; record the predicted-class probability after each step."""
        m = "cytology"
        if m not in t.modalities or m not in flats:
            return
        rows, drops, spans = [], [], []
        for i, (c, r) in enumerate(zip(cases, results, strict=True)):
            n = len(r.attention.get(m, ()))
            if m not in r.cams or n < 2:
                continue
            slots = flats[m].slot[flats[m].owner == i]
            rng = np.random.default_rng(stable_seed(self.seed, "tile-deletion", c.patient_id))
            orders = {
                "cam": np.argsort(-r.cams[m].sum((1, 2)), kind="stable"),
                "attention": np.argsort(-r.attention[m], kind="stable"),
            }
            orders.update({f"random{d}": rng.permutation(n) for d in range(self.random_draws)})
            for name, order in orders.items():
                spans.append((i, name, len(rows)))
                for k in range(n):
                    rows.append(i)
                    drops.append(slots[order[:k]])
        if not rows:
            return
        idx = np.array(rows)
        reps = [self._repeat(b, idx) for b in batches]
        for b in reps:
            for row, drop in enumerate(drops):
                b[f"{m}_mask"][row, torch.as_tensor(drop, dtype=torch.long, device=self.compute.device)] = (
                    False
                )
        p = self._prob(t, reps, w[idx])
        score = np.where(sign[idx] > 0, p, 1 - p)
        for i, name, start in spans:
            n = len(results[i].attention[m])
            curve = score[start : start + n]
            key = "random" if name.startswith("random") else name
            acc = results[i].tile_deletion
            acc[key] = acc.get(key, 0) + (curve / self.random_draws if key == "random" else curve)

    def _us_deletion(
        self,
        t: Target,
        cases: Sequence[Case],
        flats: dict[str, _Flat],
        batches: list[dict[str, torch.Tensor]],
        w: np.ndarray,
        sign: np.ndarray,
        results: list[CaseResult],
    ) -> None:
        """Blur away the top CAM share of every view (fractions of pixels) against regions of a
        random map with the CAM's grain; record the predicted-class probability."""
        m = "us"
        if m not in t.modalities or m not in flats or not self.us_fractions:
            return
        f = flats[m]
        have = [i for i, r in enumerate(results) if m in r.cams]
        if not have:
            return
        size = f.images.shape[1]
        blurred = np.stack([cv2.GaussianBlur(im, (0, 0), size / 16) for im in f.images])
        position = np.zeros(len(f.owner), np.int64)  # each instance's index among its case's views
        for i in have:
            position[f.owner == i] = np.arange(int((f.owner == i).sum()))
        base = self._prob(t, batches, w)
        curves: dict[str, list[np.ndarray]] = {"cam": [base], "random": [base]}
        for frac in self.us_fractions:
            for name in curves:
                key = (name, frac)
                images = f.images.copy()
                for n_i in np.flatnonzero(np.isin(f.owner, have)):
                    i = int(f.owner[n_i])
                    grid = results[i].cams[m][position[n_i]]
                    if name == "random":
                        seed = stable_seed(self.seed, "us-deletion", cases[i].patient_id, int(f.slot[n_i]))
                        grid = np.random.default_rng(seed).random(grid.shape)
                    ranked = cv2.resize(grid.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
                    sel = ranked >= np.quantile(ranked, 1 - frac)
                    images[n_i][sel] = blurred[n_i][sel]
                reps = []
                for mem, b in zip(t.members, batches, strict=True):
                    bb = mem.backbones[m]
                    cache_key = (id(bb), key, tuple(have)) if name == "random" else (id(bb), key, t.key)
                    if cache_key not in self._occluded:
                        self._occluded[cache_key] = self._backbone(bb, images, None)[0]
                    change = self._occluded[cache_key] - self._passes[(id(bb), m)][0].detach()
                    reps.append({**b, m: b[m] + self._placed(m, cases, f, change, b[m])})
                curves[name].append(self._prob(t, reps, w))
        for name, parts in curves.items():
            arr = np.stack(parts, 1)  # (P, 1 + fractions)
            score = np.where(sign[:, None] > 0, arr, 1 - arr)
            for i in have:
                results[i].us_deletion[name] = score[i]

    def _contribution(
        self,
        t: Target,
        cases: Sequence[Case],
        batches: list[dict[str, torch.Tensor]],
        w: np.ndarray,
        results: list[CaseResult],
    ) -> None:
        """The probability with each modality masked (the learned missing-modality embedding)."""
        if len(t.modalities) < 2:
            return
        for m in t.modalities:
            reps = []
            for b in batches:
                b2 = dict(b)
                b2[f"{m}_mask"] = torch.zeros_like(b[f"{m}_mask"])
                reps.append(b2)
            p = self._prob(t, reps, w)
            for i, c in enumerate(cases):
                if c.has(m):
                    results[i].without[m] = float(p[i])
