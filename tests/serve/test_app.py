"""The HTTP API: one patient in, the same answer as radiopath predict out; uploads limited and
type-checked, kept only while scored, never named in a log; every prediction audited."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from bundles import new_patients
from radiopath.serve import create_app, load_bundle
from radiopath.serve.audit import AuditLog
from radiopath.serve.predict import predict_manifest


@pytest.fixture(scope="module")
def client(study, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    return TestClient(create_app(study.bundle, audit_log=audit))


def _files(row: pd.Series, name: str = "scan.png") -> list:
    return [
        ("us_1", (f"SMITH_JOHN_{name}", Path(row["us_1"]).read_bytes(), "image/png")),
        ("us_2", (f"SMITH_JOHN_2_{name}", Path(row["us_2"]).read_bytes(), "image/png")),
        ("cytology", ("SMITH_JOHN.tiff", Path(row["cytology"]).read_bytes(), "image/tiff")),
    ]


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("radiopath-request-*")}


def test_one_patient_matches_predict_and_is_audited(
    study, client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row = new_patients(study, tmp_path, n=1).iloc[0]
    info = client.get("/info").json()
    assert info["primary_model"] == "fusion_concat" and info["models"][0]["primary"]
    assert info["cytology_default_mpp"] == 0.5 and info["limits"]["max_image_mb"] == 64
    before = _leftovers()
    boxes = {"us_1_box": row["us_1_box"], "us_2_box": row["us_2_box"], "cytology_mpp": "0.5"}
    with caplog.at_level(logging.INFO, logger="radiopath.serve"):
        res = client.post("/predict", files=_files(row), data=boxes)
    assert res.status_code == 200, res.text
    body = res.json()
    assert [r["model"] for r in body["results"]] == ["fusion_concat", "ultrasound"]
    assert body["inputs"]["cytology_mpp"] == {"mpp": 0.5, "source": "file"}  # the slide records its own
    # the same files through radiopath predict (a one-row manifest without center or labels)
    cols = ("us_1", "us_2", "us_1_box", "us_2_box", "cytology")
    pd.DataFrame([{"patient_id": "x", **{k: row[k] for k in cols}}]).to_csv(tmp_path / "one.csv", index=False)
    ref = predict_manifest(load_bundle(study.bundle), tmp_path / "one.csv", cache_dir=study.cache).predictions
    for r in body["results"]:
        expect = ref[ref["model"] == r["model"]].iloc[0]
        assert abs(r["prob"] - expect["prob"]) < 1e-9 and r["decision"] == expect["decision"]
        assert abs(r["prob_min"] - expect["prob_min"]) < 1e-9 and r["n_folds"] == 3
    assert _leftovers() == before  # the request's private folder is gone
    text = caplog.text + json.dumps(body)
    assert "SMITH" not in text and row["patient_id"] not in text
    record = AuditLog(client.app.state.service.audit.path).records()[-1]
    assert record["outcome"] == "ok" and record["bundle"]["version"] == "1.0.0"
    meta = json.loads((study.bundle / "configs/metadata.json").read_text())
    assert record["bundle"]["fingerprint"] == meta["fingerprint"]

    assert record["inputs_sha256"]["us_1"] == [hashlib.sha256(Path(row["us_1"]).read_bytes()).hexdigest()]
    assert "SMITH" not in client.app.state.service.audit.path.read_text()
    assert [o["model"] for o in record["outputs"]] == ["fusion_concat", "ultrasound"]


def test_patches_need_their_resolution(study, client: TestClient, tmp_path: Path) -> None:
    from radiopath.slides import open_slide

    row = new_patients(study, tmp_path, n=1).iloc[0]
    import cv2

    with open_slide(row["cytology"]) as s:
        w, h = s.dimensions
        region = s.read_region(0, 0, 0, w, h)
    png = cv2.imencode(".png", np.ascontiguousarray(region[:, :, ::-1]))[1].tobytes()
    files = [
        ("us_1", ("a.png", Path(row["us_1"]).read_bytes(), "image/png")),
        ("cytology", ("c.png", png, "image/png")),
    ]
    res = client.post("/predict", files=files, data={"cytology_mpp": ""})
    assert res.status_code == 400 and res.json()["field"] == "cytology_mpp"
    assert "records no resolution" in res.json()["error"]
    res = client.post("/predict", files=files, data={"cytology_mpp": "0.5"})
    assert res.status_code == 200, res.text
    assert res.json()["inputs"]["cytology_mpp"] == {"mpp": 0.5, "source": "form"}


def test_uploads_are_limited_and_type_checked(study, tmp_path: Path) -> None:
    row = new_patients(study, tmp_path, n=1).iloc[0]
    app = create_app(load_bundle(study.bundle), audit_log=tmp_path / "a.jsonl", max_upload_mb=1, warm=False)
    small = TestClient(app)
    before = _leftovers()
    big = Path(row["us_1"]).read_bytes() + bytes(1_200_000)
    res = small.post("/predict", files=[("us_1", ("a.png", big, "image/png"))])
    assert res.status_code == 413 and "larger than this server accepts (1 MB)" in res.json()["error"]
    res = small.post("/predict", files=[("us_1", ("a.png", b"GIF89a-not-really" * 3, "image/png"))])
    assert res.status_code == 422  # a GIF header, then nothing decodable
    res = small.post("/predict", files=[("us_1", ("a.png", b"MZ\x90\x00 an executable", "image/png"))])
    assert res.status_code == 415 and res.json()["field"] == "us_1"
    res = small.post("/predict", files=[("notes", ("a.txt", b"hello", "text/plain"))])
    assert res.status_code == 400 and "unknown file field" in res.json()["error"]
    view2 = [("us_2", ("a.png", Path(row["us_2"]).read_bytes(), "image/png"))]
    res = small.post("/predict", data={"cytology_mpp": "0.5"}, files=view2)
    assert res.status_code == 400 and res.json()["field"] == "us_1"
    res = small.post("/predict", content=b"{}", headers={"content-type": "application/json"})
    assert res.status_code == 415
    truncated = Path(row["us_1"]).read_bytes()[:400]
    res = small.post("/predict", files=[("us_1", ("a.png", truncated, "image/png"))])
    assert res.status_code == 422 and "truncated or corrupt PNG" in res.json()["error"]
    assert "radiopath-request" not in res.json()["error"]  # no server paths in answers
    assert _leftovers() == before
    outcomes = [r["outcome"] for r in AuditLog(tmp_path / "a.jsonl").records()]
    assert outcomes[-1] == "error"


def test_the_audit_log_survives_concurrent_writers(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    blob = "x" * 5000  # longer than a pipe buffer's atomic write

    def write(k: int) -> None:
        for i in range(25):
            log.append({"writer": k, "i": i, "blob": blob})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = log.records()
    assert len(records) == 200
    assert {(r["writer"], r["i"]) for r in records} == {(k, i) for k in range(8) for i in range(25)}
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o077 == 0  # owner only


def test_openapi_documents_the_predict_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    form = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"us_1", "us_2", "cytology", "cytology_mpp"} <= set(form["properties"])
    assert client.get("/docs").status_code == 200 and "radiopath" in client.get("/").text


def _dicom(png: Path, out: Path) -> bytes:
    """The PNG's pixels as an RGB ultrasound DICOM (no regions: the scan area comes from the pixels)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from radiopath.io.images import read_image

    image = read_image(png)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName = "US", "SMITH^JOHN"
    ds.Rows, ds.Columns = image.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(image).tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out.read_bytes()


def test_a_dicom_view_scores_as_the_png_of_its_pixels(study, client: TestClient, tmp_path: Path) -> None:
    row = new_patients(study, tmp_path, n=1).iloc[0]
    png = [("us_1", ("v.png", Path(row["us_1"]).read_bytes(), "image/png"))]
    dcm = [("us_1", ("v.dcm", _dicom(Path(row["us_1"]), tmp_path / "v.dcm"), "application/dicom"))]
    box = {"us_1_box": row["us_1_box"]}
    a = client.post("/predict", files=png, data=box).json()
    b = client.post("/predict", files=dcm, data=box).json()
    assert b["inputs"]["us_1"][0]["format"] == "DICOM"
    assert [r["model"] for r in b["results"]] == ["fusion_concat", "ultrasound"]
    for ra, rb in zip(a["results"], b["results"], strict=True):
        assert abs(ra["prob"] - rb["prob"]) < 1e-9
    assert b["results"][0]["missing_modality"]  # no cytology: flagged
    assert "SMITH" not in json.dumps(b)
