"""IBSI features pinned to PyRadiomics 3.1 (values in data/pyradiomics_reference.json) and to
scikit-image, on formula phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.feature import graycomatrix

from features.phantoms import BIN_WIDTH, phantoms
from radiopath.features import texture
from radiopath.features.firstorder import firstorder_features
from radiopath.features.radiomics import discretise
from radiopath.features.shape2d import shape_features

REFERENCE = json.loads((Path(__file__).parent / "data" / "pyradiomics_reference.json").read_text())

#: PyRadiomics name -> ours, per family.
NAMES = {
    "firstorder": {
        "Mean": "mean",
        "Variance": "variance",
        "Skewness": "skewness",
        "Median": "median",
        "Minimum": "minimum",
        "10Percentile": "percentile_10",
        "90Percentile": "percentile_90",
        "Maximum": "maximum",
        "InterquartileRange": "interquartile_range",
        "Range": "range",
        "MeanAbsoluteDeviation": "mean_absolute_deviation",
        "RobustMeanAbsoluteDeviation": "robust_mean_absolute_deviation",
        "Energy": "energy",
        "RootMeanSquared": "root_mean_square",
        "Entropy": "histogram_entropy",
        "Uniformity": "histogram_uniformity",
    },
    "shape2D": {
        "MeshSurface": "mesh_area",
        "PixelSurface": "pixel_area",
        "Perimeter": "perimeter",
        "PerimeterSurfaceRatio": "perimeter_to_area_ratio",
        "Sphericity": "sphericity",
        "MaximumDiameter": "maximum_diameter",
        "MajorAxisLength": "major_axis_length",
        "MinorAxisLength": "minor_axis_length",
        "Elongation": "elongation",
    },
    "glcm": {
        "Autocorrelation": "autocorrelation",
        "JointAverage": "joint_average",
        "ClusterProminence": "cluster_prominence",
        "ClusterShade": "cluster_shade",
        "ClusterTendency": "cluster_tendency",
        "Contrast": "contrast",
        "Correlation": "correlation",
        "DifferenceAverage": "difference_average",
        "DifferenceEntropy": "difference_entropy",
        "DifferenceVariance": "difference_variance",
        "JointEnergy": "angular_second_moment",
        "JointEntropy": "joint_entropy",
        "Imc1": "information_correlation_1",
        "Imc2": "information_correlation_2",
        "Idm": "inverse_difference_moment",
        "Idmn": "normalised_inverse_difference_moment",
        "Id": "inverse_difference",
        "Idn": "normalised_inverse_difference",
        "InverseVariance": "inverse_variance",
        "MaximumProbability": "joint_maximum",
        "SumAverage": "sum_average",
        "SumEntropy": "sum_entropy",
        "SumSquares": "joint_variance",
    },
    "glrlm": {
        "ShortRunEmphasis": "short_runs_emphasis",
        "LongRunEmphasis": "long_runs_emphasis",
        "GrayLevelNonUniformity": "grey_level_non_uniformity",
        "GrayLevelNonUniformityNormalized": "normalised_grey_level_non_uniformity",
        "RunLengthNonUniformity": "run_length_non_uniformity",
        "RunLengthNonUniformityNormalized": "normalised_run_length_non_uniformity",
        "RunPercentage": "run_percentage",
        "GrayLevelVariance": "grey_level_variance",
        "RunVariance": "run_length_variance",
        "RunEntropy": "run_entropy",
        "LowGrayLevelRunEmphasis": "low_grey_level_run_emphasis",
        "HighGrayLevelRunEmphasis": "high_grey_level_run_emphasis",
        "ShortRunLowGrayLevelEmphasis": "short_run_low_grey_level_emphasis",
        "ShortRunHighGrayLevelEmphasis": "short_run_high_grey_level_emphasis",
        "LongRunLowGrayLevelEmphasis": "long_run_low_grey_level_emphasis",
        "LongRunHighGrayLevelEmphasis": "long_run_high_grey_level_emphasis",
    },
    "glszm": {
        "SmallAreaEmphasis": "small_zone_emphasis",
        "LargeAreaEmphasis": "large_zone_emphasis",
        "GrayLevelNonUniformity": "grey_level_non_uniformity",
        "GrayLevelNonUniformityNormalized": "normalised_grey_level_non_uniformity",
        "SizeZoneNonUniformity": "zone_size_non_uniformity",
        "SizeZoneNonUniformityNormalized": "normalised_zone_size_non_uniformity",
        "ZonePercentage": "zone_percentage",
        "GrayLevelVariance": "grey_level_variance",
        "ZoneVariance": "zone_size_variance",
        "ZoneEntropy": "zone_size_entropy",
        "LowGrayLevelZoneEmphasis": "low_grey_level_zone_emphasis",
        "HighGrayLevelZoneEmphasis": "high_grey_level_zone_emphasis",
        "SmallAreaLowGrayLevelEmphasis": "small_zone_low_grey_level_emphasis",
        "SmallAreaHighGrayLevelEmphasis": "small_zone_high_grey_level_emphasis",
        "LargeAreaLowGrayLevelEmphasis": "large_zone_low_grey_level_emphasis",
        "LargeAreaHighGrayLevelEmphasis": "large_zone_high_grey_level_emphasis",
    },
    "gldm": {
        "SmallDependenceEmphasis": "low_dependence_emphasis",
        "LargeDependenceEmphasis": "high_dependence_emphasis",
        "GrayLevelNonUniformity": "grey_level_non_uniformity",
        "DependenceNonUniformity": "dependence_count_non_uniformity",
        "DependenceNonUniformityNormalized": "normalised_dependence_count_non_uniformity",
        "GrayLevelVariance": "grey_level_variance",
        "DependenceVariance": "dependence_count_variance",
        "DependenceEntropy": "dependence_count_entropy",
        "LowGrayLevelEmphasis": "low_grey_level_count_emphasis",
        "HighGrayLevelEmphasis": "high_grey_level_count_emphasis",
        "SmallDependenceLowGrayLevelEmphasis": "low_dependence_low_grey_level_emphasis",
        "SmallDependenceHighGrayLevelEmphasis": "low_dependence_high_grey_level_emphasis",
        "LargeDependenceLowGrayLevelEmphasis": "high_dependence_low_grey_level_emphasis",
        "LargeDependenceHighGrayLevelEmphasis": "high_dependence_high_grey_level_emphasis",
    },
    "ngtdm": {n.capitalize(): n for n in texture.NGTDM_FEATURES},
}


def ours(image: np.ndarray, mask: np.ndarray) -> dict[str, dict[str, float]]:
    levels = discretise(image, mask, BIN_WIDTH)
    return {
        "firstorder": firstorder_features(image[mask], levels[mask]),
        "shape2D": shape_features(mask),
        "glcm": texture.glcm_features(levels),
        "glrlm": texture.glrlm_features(levels),
        "glszm": texture.glszm_features(levels),
        "gldm": texture.ngldm_features(levels),
        "ngtdm": texture.ngtdm_features(levels),
    }


@pytest.mark.parametrize("k", [0, 1])
def test_every_family_equals_pyradiomics(k: int) -> None:
    image, mask = phantoms()[k]
    got = ours(image, mask)
    ref = REFERENCE[f"phantom{k}"]
    compared = 0
    for family, names in NAMES.items():
        for theirs, mine in names.items():
            assert got[family][mine] == pytest.approx(ref[f"{family}_{theirs}"], rel=1e-6, abs=1e-9), (
                f"{family}.{mine}"
            )
            compared += 1
    assert compared == 99
    # IBSI's kurtosis is PyRadiomics' minus 3
    assert got["firstorder"]["kurtosis"] == pytest.approx(ref["firstorder_Kurtosis"] - 3.0)


@pytest.mark.parametrize("k", [0, 1])
def test_ibsi_features_pyradiomics_leaves_out(k: int) -> None:
    """Sum variance equals cluster tendency for a symmetric GLCM; the NGLDM's normalised grey
    level non-uniformity equals the histogram uniformity (why PyRadiomics drops both)."""
    got = ours(*phantoms()[k])
    assert got["glcm"]["sum_variance"] == pytest.approx(got["glcm"]["cluster_tendency"], rel=1e-9)
    assert got["gldm"]["normalised_grey_level_non_uniformity"] == pytest.approx(
        got["firstorder"]["histogram_uniformity"], rel=1e-9
    )


def test_glcm_matrices_equal_graycomatrix() -> None:
    image, mask = phantoms()[1]
    levels = discretise(image, mask, BIN_WIDTH)
    ng = int(levels.max())
    ours_m = texture.glcm_matrices(levels)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    img = np.where(mask, levels - 1, ng).astype(np.uint8)  # outside the region: an extra level
    ref = graycomatrix(img, [1], angles, levels=ng + 1, symmetric=True)[:ng, :ng, 0, :]
    # ours: 0, 45, 90, 135 degrees counter-clockwise on screen (row up = -1); skimage turns the
    # other way, so its 45 and 135 degrees are our 135 and 45
    for d, theirs in enumerate((0, 3, 2, 1)):
        np.testing.assert_array_equal(ours_m[d], ref[:, :, theirs])


def test_runs_zones_and_dependences_of_a_tiny_image() -> None:
    """Counted by hand: a 3x4 image with a run of three 2s, one zone per level."""
    levels = np.array([[1, 1, 2, 2], [2, 2, 2, 3], [0, 3, 3, 3]])
    m, lengths = texture.glrlm_matrix(levels, 0, 1)
    assert lengths.tolist() == [1, 2, 3]
    assert m.tolist() == [[0, 1, 0], [0, 1, 1], [1, 0, 1]]  # level 1: 11; level 2: 22, 222; level 3: 3, 333
    f = texture.glszm_features(levels)
    assert f["zone_percentage"] == pytest.approx(3 / 11)  # three zones (8-connected) in 11 pixels
    g = texture.ngldm_features(levels)
    assert np.isfinite(list(g.values())).all()


def test_empty_region_gives_nan() -> None:
    empty = np.zeros((5, 5), int)
    for fn in (texture.glcm_features, texture.glrlm_features, texture.glszm_features, texture.ngtdm_features):
        assert all(np.isnan(v) for v in fn(empty).values())
