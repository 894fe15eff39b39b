"""The browser's choice of where a job's models run, on a server set up with a Ray
cluster (a real one, started by the tests): pre-labeling and selection run there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labelpilot.workspace import Workspace
from tests.coco128 import detect_workspace
from tests.server.conftest import PASSWORD
from tests.web.conftest import serve, sign_in
from tests.web.test_assist import wait_job

pytestmark = pytest.mark.xdist_group("ray")  # the cluster of the Ray executor's tests


def test_jobs_run_on_the_ray_cluster_the_browser_picks(
        browser: Any, tmp_path: Path, shared: Path, ray_cluster: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite only: the store is not what this tests (the Ray tests write PostgreSQL too)
    ws = detect_workspace(lambda **kw: Workspace.create(tmp_path / "ws", **kw), tmp_path,
                          shared, [], users=True)  # the model's classes are added
    root = ws.root
    ws.close()
    # a server without a cluster offers no choice
    for live in serve(root):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        sign_in(page, live, "reviewer")
        page.wait_for_selector("#prelabel")
        assert page.query_selector("#prelabel-executor") is None
        page.close()
    monkeypatch.setenv("LABELPILOT_RAY_ADDRESS", ray_cluster)
    monkeypatch.setenv("LABELPILOT_RAY_WORKERS", "2")
    for live in serve(root):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        sign_in(page, live, "reviewer")
        page.wait_for_selector("#prelabel-executor")
        assert page.eval_on_selector("#prelabel-executor", "s => s.value") == "local"
        page.select_option("#prelabel-model", "yolox-nano")
        page.select_option("#prelabel-executor", "ray")
        page.click("#prelabel")
        wait_job(page, "autolabel")
        token = live.token("reviewer", PASSWORD)
        (job,) = live.api("GET", "/api/jobs", token)
        assert job["params"]["executor"]["kind"] == "ray" and job["result"]["executor"] == "ray"
        assert job["result"]["added"] > 0
        # the selection panel too: the image just pre-labeled is scored on the cluster
        page.select_option("#select-strategy", "uncertainty")
        page.fill("#select-budget", "1")
        page.select_option("#select-executor", "ray")
        page.click("#select")
        wait_job(page, "select")
        chosen = next(j for j in live.api("GET", "/api/jobs", token) if j["kind"] == "select")
        assert chosen["result"]["executor"] == "ray" and len(chosen["result"]["selected"]) == 1
        page.close()
