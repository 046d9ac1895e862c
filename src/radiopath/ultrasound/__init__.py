"""Ultrasound preprocessing: scan area, nodule region, burned-in marks, intensity — one transform.

Hospital screenshots carry vendor chrome, calipers and measurement text, and each scanner
has its own gain and dynamic range; a model trained on them learns the hospital and the
calipers, not the nodule. :class:`UltrasoundTransform` removes all of that, the same way
for training, prediction and the web page::

    from radiopath.ultrasound import UltrasoundConfig, UltrasoundTransform, load_view

    tf = UltrasoundTransform(UltrasoundConfig(margin=0.15, size=224))
    crop = tf(image_rgb, box=(x0, y0, x1, y1), center="Hospital A")   # (224, 224, 3) uint8
    crop = load_view(cohort.table.iloc[0], "us_1", tf)                 # straight from a manifest row
"""

from radiopath.ultrasound.augment import augment
from radiopath.ultrasound.config import (
    AugmentConfig,
    IntensityConfig,
    MarksConfig,
    ScanAreaConfig,
    UltrasoundConfig,
)
from radiopath.ultrasound.marks import Marks, find_marks, marks_debug_image, remove_marks
from radiopath.ultrasound.region import Region, choose_region
from radiopath.ultrasound.scan_area import ScanArea, ScanAreaError, find_scan_area
from radiopath.ultrasound.transform import ProcessedView, UltrasoundTransform, load_view

__all__ = [
    "AugmentConfig",
    "IntensityConfig",
    "Marks",
    "MarksConfig",
    "ProcessedView",
    "Region",
    "ScanArea",
    "ScanAreaConfig",
    "ScanAreaError",
    "UltrasoundConfig",
    "UltrasoundTransform",
    "augment",
    "choose_region",
    "find_marks",
    "find_scan_area",
    "load_view",
    "marks_debug_image",
    "remove_marks",
]
