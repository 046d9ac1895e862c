"""Bounded memory: tiling a 100,000 x 100,000 px slide never loads level 0 (30 GB of RGB) whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slides.bigslide import write_big_slide

#: Peak resident memory allowed while tiling the big slide (issue 3: under 1.5 GB).
RSS_LIMIT_MB = 1500

# The child's own high-water mark, VmHWM. Not getrusage's ru_maxrss: Linux carries that across
# exec from the forking parent, so a test process grown to 2 GB would be measured instead.
_CHILD = """
import json, re, sys
from radiopath.slides import TilingConfig, tile_slide_result
r = tile_slide_result(sys.argv[1], TilingConfig())
hwm_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({**r.summary(), "levels": sorted(set(r.table["level"].tolist())),
                  "peak_rss_mb": hwm_kb / 1024}))
"""


@pytest.mark.slow
def test_peak_memory_on_a_100k_slide(tmp_path: Path) -> None:
    slide = write_big_slide(tmp_path / "big.tiff")  # 354 MB file, 8 pyramid levels, 0.25 µm/px
    # a fresh process, so the peak is this slide's alone
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(slide)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["width"], out["height"]) == (100_000, 100_000)
    assert out["status"] == "ok" and out["tiles"] == 64
    assert out["levels"] == [1]  # 0.5 µm/px tiles come from level 1 of a 0.25 µm/px slide
    assert out["read"] < 0.01 * out["grid_tiles"]  # 49,729 grid tiles, about a hundred read
    assert out["peak_rss_mb"] < RSS_LIMIT_MB, f"peak RSS {out['peak_rss_mb']:.0f} MB"
