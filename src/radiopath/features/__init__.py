"""Features of every view and tile: the extraction stage, its cache, its artifact, and the
feature families (:mod:`.families`).

* :func:`extract_features` / :func:`extract_stage` — cohort → fitted preprocessing →
  features (``radiopath extract`` writes them to a ``FEATS/`` folder);
* :class:`FeatureSet` — that folder in memory (``FeatureSet.load(FEATS)``), and
  :meth:`FeatureSet.inputs` → the dense patient arrays the heads train on;
* :class:`Preprocessing` — the fitted state of every modality (development cohort only);
* families: :mod:`.deep` (frozen CNN backbones), :mod:`.radiomics` (ultrasound radiomics with
  IBSI names), :mod:`.pathomics` (cytology nuclear morphometry and crowding);
  :mod:`.cache` — the content-keyed cache.

The names below are imported on first use, so ``radiopath.features.radiomics`` or
``.pathomics`` can be imported without torch.
"""

from __future__ import annotations

from radiopath.lazy import lazy_exports

_EXPORTS = {
    "Backbones": "radiopath.features.extract",
    "FeatureCache": "radiopath.features.cache",
    "default_cache_dir": "radiopath.features.cache",
    "extract_features": "radiopath.features.extract",
    "extract_stage": "radiopath.features.extract",
    "load_images": "radiopath.features.extract",
    "plan_groups": "radiopath.features.extract",
    "Preprocessing": "radiopath.features.preprocessing",
    "fit_preprocessing": "radiopath.features.preprocessing",
    "FeatureSet": "radiopath.features.store",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("radiopath.features", _EXPORTS)
