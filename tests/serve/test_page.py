"""The clinician's page, end to end in headless Chromium (Playwright with Debian's chromium):
upload synthetic files, read the answer, and check it against radiopath predict on the same
files; an unreadable file shows an error instead. Set RADIOPATH_SCREENSHOTS=DIR to keep
screenshots of the page empty, filled, with a result and with an error."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bundles import new_patients
from radiopath.cli import app as cli
from radiopath.serve import create_app

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (CI installs it in .ci/run: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def server(study, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    audit = tmp_path_factory.mktemp("page") / "audit.jsonl"
    app = create_app(study.bundle, audit_log=audit)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
def test_the_page_gives_the_answer_of_radiopath_predict(study, server: str, tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    binary = _chromium()
    shots = Path(os.environ["RADIOPATH_SCREENSHOTS"]) if os.environ.get("RADIOPATH_SCREENSHOTS") else None
    row = new_patients(study, tmp_path, n=1).iloc[0]
    cols = ("us_1", "us_2", "us_1_box", "us_2_box", "cytology")
    pd.DataFrame([{"patient_id": "p", **{k: row[k] for k in cols}}]).to_csv(tmp_path / "one.csv", index=False)
    out = tmp_path / "one-preds.csv"
    args = ["predict", str(study.bundle), str(tmp_path / "one.csv"), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    expected = pd.read_csv(out).set_index("model")

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=binary, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        page = ctx.new_page()
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('bundle').textContent.startsWith('model')")
        assert "Fusion (concatenation)" in page.text_content("#bundle")
        assert page.input_value("#cytology_mpp") == "0.5"
        if shots:
            page.screenshot(path=str(shots / "1-empty.png"), full_page=True)
        page.set_input_files("#us_1", row["us_1"])
        page.set_input_files("#us_2", row["us_2"])
        page.set_input_files("#cytology", row["cytology"])
        page.wait_for_selector("#us_1_canvas", state="visible")
        page.fill("#us_1_box", row["us_1_box"])
        page.fill("#us_2_box", row["us_2_box"])
        if shots:
            page.screenshot(path=str(shots / "2-filled.png"), full_page=True)
        page.click("#submit")
        page.wait_for_selector("#risk", timeout=60_000)
        if shots:
            page.screenshot(path=str(shots / "3-result.png"), full_page=True)
        primary = page.locator("#primary")
        assert primary.get_attribute("data-model") == "fusion_concat"
        prob = float(primary.get_attribute("data-prob"))
        ref = expected.loc["fusion_concat"]
        assert abs(prob - ref["prob"]) < 1e-9
        assert page.text_content("#risk") == f"{100 * ref['prob']:.1f}%"
        decision = "Metastasis predicted" if ref["decision"] else "No metastasis predicted"
        assert page.text_content("#decision") == decision
        spread = page.text_content("#spread")
        assert f"{100 * ref['prob_min']:.1f}%" in spread and f"{100 * ref['prob_max']:.1f}%" in spread
        assert page.text_content("#modalities") == "ultrasound + cytology"
        other = page.locator("#others tr[data-model=ultrasound]")
        assert abs(float(other.get_attribute("data-prob")) - expected.loc["ultrasound", "prob"]) < 1e-9
        assert page.is_visible("#no-overlays") is False  # inside a closed <details>
        assert page.locator("#no-overlays").count() == 1

        # an unreadable view: the page says what is wrong and what to do
        broken = tmp_path / "broken.png"
        broken.write_bytes(Path(row["us_1"]).read_bytes()[:500])
        page.click("#reset")
        page.set_input_files("#us_1", str(broken))
        page.set_input_files("#us_2", [])
        page.set_input_files("#cytology", [])
        page.click("#submit")
        page.wait_for_selector("#error-message", timeout=60_000)
        if shots:
            page.screenshot(path=str(shots / "4-error.png"), full_page=True)
        assert "truncated or corrupt PNG" in page.text_content("#error-message")
        assert page.text_content("#error-fix")
        ctx.close()
