"""Open report.html in headless Chromium: it renders, and every figure decodes with a real size."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

# Without the background-networking flags Chromium hangs on a closed network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
)
# Runs after load: records on <body> how many images there are and which failed to decode.
PROBE = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(
    i => !i.src.startsWith("data:") || !i.complete || i.naturalWidth === 0 || i.naturalHeight === 0);
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-bad-images", bad.map(i => i.alt).join("|") || "none");
  document.body.setAttribute("data-min-width", String(Math.min(...imgs.map(i => i.naturalWidth))));
});
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (CI installs it in .ci/run: apt-get install -y chromium)")


def _run(binary: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_report_renders_in_headless_chromium_with_every_figure(sim_report: Path, tmp_path: Path) -> None:
    binary = _chromium()
    report = sim_report
    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )

    dom = _run(binary, ["--dump-dom", probe.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None, dom.stdout[:500]
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-images") == "11", attrs  # 8 figures + 3 Grad-CAM images
    assert attrs.get("data-bad-images") == "none", attrs
    assert int(attrs["data-min-width"]) >= 90, attrs

    shot = tmp_path / "page.png"
    run = _run(
        binary, ["--window-size=1200,2400", f"--screenshot={shot}", report.resolve().as_uri()], tmp_path
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as im:
        colours = im.convert("RGB").resize((300, 600)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page
