"""Importing an archive over the API (issue 16): a job with the CLI's checks, all or
nothing, the uploaded archive removed afterwards, the server's paths never shown."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelpilot.server.app import create_app
from labelpilot.settings import Settings
from tests.server.conftest import PASSWORD, add_users
from tests.test_transfer import coco_dir


@pytest.fixture
def client(make_workspace) -> Iterator[tuple[TestClient, Any, dict[str, dict[str, str]]]]:  # type: ignore[no-untyped-def]
    ws = make_workspace(labels=["cat", "dog"])
    add_users(ws)
    with TestClient(create_app(ws, Settings(job_workers=1, max_import_bytes=200_000))) as c:
        heads = {}
        for role in ("annotator", "reviewer"):
            tok = c.post("/api/auth/token", data={"username": role, "password": PASSWORD}
                         ).json()["access_token"]
            heads[role] = {"Authorization": f"Bearer {tok}"}
        c.cookies.clear()
        yield c, ws, heads


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"dataset/{p.relative_to(folder).as_posix()}")
    return buf.getvalue()


def _finish(c: TestClient, job_id: int, h: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (job := c.get(f"/api/jobs/{job_id}", headers=h).json())["status"] in ("queued",
                                                                                 "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return dict(job)


def test_import_an_archive_as_a_job(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, ws, h = client
    data = _zip(coco_dir(tmp_path / "c", 3))
    files = {"file": ("my-set.zip", data, "application/zip")}
    assert c.post("/api/imports", headers=h["annotator"], files=files,
                  data={"format": "coco"}).status_code == 403
    r = c.post("/api/imports", headers=h["reviewer"], files=files,
               data={"format": "coco", "split": "val"})
    assert r.status_code == 202, r.text
    assert "path" not in r.json()["params"] and r.json()["params"]["name"] == "my-set.zip"
    job = _finish(c, r.json()["id"], h["reviewer"])
    assert job["status"] == "done", job
    res = job["result"]
    assert (res["images_added"], res["annotations_added"], res["source"]) == (3, 6, "my-set.zip")
    imgs = c.get("/api/images", headers=h["reviewer"]).json()["data"]
    assert len(imgs) == 3 and {i["split"] for i in imgs} == {"val"}
    assert list((ws.root / "imports").iterdir()) == []  # the upload is gone


def test_bad_archives_are_refused_and_change_nothing(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, ws, h = client
    src = coco_dir(tmp_path / "c", 2)
    doc = json.loads((src / "annotations" / "instances.json").read_text())
    doc["annotations"][0]["category_id"] = 99
    (src / "annotations" / "instances.json").write_text(json.dumps(doc))
    r = c.post("/api/imports", headers=h["reviewer"], data={"format": "coco"},
               files={"file": ("broken.zip", _zip(src), "application/zip")})
    job = _finish(c, r.json()["id"], h["reviewer"])
    assert job["status"] == "failed" and "category_id 99 is not in 'categories'" in job["error"]
    assert c.get("/api/images", headers=h["reviewer"]).json()["count"] == 0
    assert list((ws.root / "imports").iterdir()) == []
    # not an archive, an unknown format, over the size limit: refused at once
    r = c.post("/api/imports", headers=h["reviewer"], data={"format": "coco"},
               files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 400 and "is not an archive" in r.json()["detail"]
    r = c.post("/api/imports", headers=h["reviewer"], data={"format": "pascal"},
               files={"file": ("a.zip", _zip(src), "application/zip")})
    assert r.status_code == 400 and "unknown format 'pascal'" in r.json()["detail"]
    big = tmp_path / "big"
    shutil.copytree(src, big)
    (big / "noise.bin").write_bytes(bytes(range(256)) * 1000)
    r = c.post("/api/imports", headers=h["reviewer"], data={"format": "coco"},
               files={"file": ("big.zip", _zip(big), "application/zip")})
    assert r.status_code == 413 and "200,000 bytes" in r.json()["detail"]
