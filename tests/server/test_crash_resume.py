"""A real server process killed with SIGKILL during a job; the job resumes on restart."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from labelpilot.jobs.export import export_dir
from labelpilot.transfer import export_dataset, import_dataset
from tests.server.conftest import PASSWORD, add_users
from tests.server.live import free_port, serve
from tests.test_transfer import coco_dir


def test_sigkill_mid_job_then_resume(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    n = 24
    import_dataset(ws, coco_dir(tmp_path / "c", n), format="coco")
    add_users(ws)
    root = ws.root
    ws.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(root, port, delay=0.15)
    try:
        tok = httpx.post(f"{base}/api/auth/token",
                         data={"username": "reviewer", "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        job_id = httpx.post(f"{base}/api/exports", json={"format": "coco"}, headers=h).json()["id"]
        deadline = time.monotonic() + 30
        while (job := httpx.get(f"{base}/api/jobs/{job_id}", headers=h).json())["done"] < 6:
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert job["status"] == "running" and job["done"] < n

    proc = serve(root, port, delay=0.0)
    try:
        deadline = time.monotonic() + 30
        while (job := httpx.get(f"{base}/api/jobs/{job_id}", headers=h).json())["status"] != "done":
            assert job["status"] in ("queued", "running"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = job["result"]
    assert job["done"] == job["total"] == n
    # Resumed, not restarted: what the first run recorded was not done again, and every
    # image the first run copied but had not yet recorded was found in place.
    assert result["resumed_from"] >= 6
    assert result["resumed_from"] + result["written"] + result["already_there"] == n
    assert result["written"] <= n - result["resumed_from"]
    # The export is exactly what an uninterrupted one gives.
    from labelpilot.workspace import Workspace

    reference = tmp_path / "reference"
    with Workspace.open(root) as again:
        export_dataset(again, reference, format="coco")
    assert "path" not in result and "zip" not in result  # no server paths over the API
    got = export_dir(root, job_id)
    files = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
    want = sorted(p.relative_to(reference).as_posix() for p in reference.rglob("*") if p.is_file())
    assert files == want
    for rel in want:
        if rel.endswith(".json"):
            assert json.loads((got / rel).read_text()) == json.loads((reference / rel).read_text())
        else:
            assert (got / rel).read_bytes() == (reference / rel).read_bytes()
