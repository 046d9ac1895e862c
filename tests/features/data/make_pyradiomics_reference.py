"""Regenerate ``pyradiomics_reference.json``: PyRadiomics' values on ``tests/features/phantoms.py``.

Needs PyRadiomics (not a radiopath dependency), e.g. in a separate venv::

    python3 -m venv /tmp/rvenv && /tmp/rvenv/bin/pip install pyradiomics-bhklab
    /tmp/rvenv/bin/python tests/features/data/make_pyradiomics_reference.py

Each 2-D phantom is passed as a one-slice volume with ``force2D=True`` (PyRadiomics 3.1.4
from ``pyradiomics-bhklab`` returns GLRLM values for GLSZM when given a 2-D image itself).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics import featureextractor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from phantoms import BIN_WIDTH, phantoms  # noqa: E402

logging.getLogger("radiomics").setLevel(logging.ERROR)
out: dict = {"pyradiomics": radiomics.__version__, "settings": {"binWidth": BIN_WIDTH, "force2D": True}}
for k, (img, mask) in enumerate(phantoms()):
    ex = featureextractor.RadiomicsFeatureExtractor(binWidth=BIN_WIDTH, force2D=True, force2Ddimension=0)
    ex.enableAllFeatures()
    res = ex.execute(sitk.GetImageFromArray(img[None]), sitk.GetImageFromArray(mask[None].astype(np.uint8)))
    out[f"phantom{k}"] = {
        key[len("original_") :]: float(v)
        for key, v in res.items()
        if key.startswith("original_") and not key.startswith("original_shape_")
    }
(HERE / "pyradiomics_reference.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print(f"wrote {len(out['phantom0'])} features per phantom")
