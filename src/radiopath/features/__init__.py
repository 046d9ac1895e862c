"""Features of every view and tile: the extraction stage, its cache and its artifact.

* :func:`extract_features` / :func:`extract_stage` — cohort → fitted preprocessing →
  features (``radiopath extract`` writes them to a ``FEATS/`` folder);
* :class:`FeatureSet` — that folder in memory (``FeatureSet.load(FEATS)``), and
  :meth:`FeatureSet.inputs` → the dense patient arrays the heads train on;
* :class:`Preprocessing` — the fitted state of every modality (development cohort only);
* :mod:`.deep` — the frozen-backbone feature family; :mod:`.cache` — the content-keyed cache.
"""

from radiopath.features.cache import FeatureCache, default_cache_dir
from radiopath.features.extract import Backbones, extract_features, extract_stage, load_images, plan_groups
from radiopath.features.preprocessing import Preprocessing, fit_preprocessing
from radiopath.features.store import FeatureSet

__all__ = [
    "Backbones",
    "FeatureCache",
    "FeatureSet",
    "Preprocessing",
    "default_cache_dir",
    "extract_features",
    "extract_stage",
    "fit_preprocessing",
    "load_images",
    "plan_groups",
]
