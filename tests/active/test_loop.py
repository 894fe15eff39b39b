"""The closed loop on a workspace (SQLite and PostgreSQL): when a round is due, the
verdict against the current pre-labeler with real evaluations, and the whole loop run by
the server's job runner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the [train] extra is part of make test")

from labelpilot.jobs import engine
from labelpilot.jobs.loop import loop_due, start_if_due
from labelpilot.jobs.promote import judge
from labelpilot.store import audit
from labelpilot.transfer import import_dataset
from labelpilot.workspace import LoopConfig, Workspace
from tests.train.test_ocr_rec import rec_dataset


def plates_like(make_workspace: Any, tmp_path: Path, train: int = 16) -> Workspace:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": train, "val": 8, "test": 6}),
                   format="ppocr-rec")
    return ws


def test_a_round_is_due_after_every_k_accepted_labels(make_workspace, tmp_path: Path) -> None:
    ws = plates_like(make_workspace, tmp_path)
    assert loop_due(ws) is None  # off by default
    ws.config.loop = LoopConfig(enabled=True, every=20, minutes=0.1)
    assert loop_due(ws) is None  # 16 accepted lines: not 20 yet
    ws.config.loop = LoopConfig(enabled=True, every=10, minutes=0.1)
    kind, params = loop_due(ws) or ("", {})
    assert kind == "train-ocr-rec"
    assert params["name"] == "loop-ocr-1" and params["base"] == "ocr"
    assert params["loop"] == {"round": 1, "accepted": 16, "against": "ocr"}
    job_id = start_if_due(ws)
    assert job_id is not None
    # queued: no second round, and the job the runner gets is the one planned
    assert loop_due(ws) is None and start_if_due(ws) is None
    with ws.engine.connect() as conn:
        assert engine.get_job(conn, job_id).params == params
    # once it ended (cancelled here), the next round waits for 10 more accepted labels
    with ws.transaction() as conn:
        assert engine.request_cancel(conn, job_id).status == "cancelled"
    assert loop_due(ws) is None
    ws.config.loop = LoopConfig(enabled=True, every=1, minutes=0.1)
    assert loop_due(ws) is None  # none accepted since round 1


def test_the_verdict_compares_real_evaluations(make_workspace, tmp_path: Path) -> None:
    from labelpilot.train.ocr_rec import TrainConfig, Trainer

    ws = plates_like(make_workspace, tmp_path)
    Trainer(ws, TrainConfig(epochs=1, batch=8, eval_every=2, name="loop-ocr-1"),
            run_dir=tmp_path / "run").run()
    # against itself: not above, kept and not promoted
    same = judge(ws, "loop-ocr-1", {"round": 1, "against": "loop-ocr-1"})
    assert same["split"] == "test" and same["new"] == same["current"]
    assert not same["promoted"] and "not promoted" in same["reason"]
    assert ws.config.prelabeler is None
    # against nothing: promoted; the default model, an audit entry, the follow-up jobs
    first = judge(ws, "loop-ocr-1", {"round": 1, "against": None})
    assert first["promoted"] and Workspace.open(ws.root).config.prelabeler == "loop-ocr-1"
    assert ws.prelabeler == "loop-ocr-1"
    with ws.engine.connect() as conn:
        (entry,) = audit.for_image(conn, 0)
        job = engine.get_job(conn, first["autolabel_job"])
    assert entry.action == "promote" and "loop-ocr-1" in entry.after
    assert job.kind == "autolabel" and job.params["model"] == "loop-ocr-1"
    assert job.params["images"] == "all"


def test_the_server_runs_the_loop(make_workspace, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD, add_users

    ws = plates_like(make_workspace, tmp_path)
    add_users(ws)
    with TestClient(create_app(ws)) as client:
        t = client.post("/api/auth/token", data={"username": "admin", "password": PASSWORD})
        h = {"Authorization": f"Bearer {t.json()['access_token']}"}
        # a reviewer may not switch it on; an admin may, over the project's settings
        r = client.post("/api/auth/token", data={"username": "reviewer", "password": PASSWORD})
        rh = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert client.patch("/api/project", headers=rh, json={
            "loop": {"enabled": True}}).status_code == 403
        bad = client.patch("/api/project", headers=h, json={"prelabeler": "graphcut"})
        assert bad.status_code == 422 and "graphcut model" in bad.json()["detail"]
        p = client.patch("/api/project", headers=h, json={
            "loop": {"enabled": True, "every": 10, "minutes": 0.05}})
        assert p.status_code == 200 and p.json()["loop"]["enabled"] is True
        assert p.json()["prelabeler"] == "ocr"
        deadline = time.monotonic() + 180
        while True:  # the idle runner starts the round, trains, judges
            jobs = client.get("/api/jobs", headers=h).json()
            train = [j for j in jobs if j["kind"] == "train-ocr-rec"]
            if train and train[0]["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.5)
        (job,) = train
        assert job["status"] == "done", job
        assert job["created_by"] == "loop" and job["params"]["loop"]["round"] == 1
        verdict = job["result"]["loop"]
        assert verdict["model"] == "loop-ocr-1" and verdict["against"] == "ocr"
        project = client.get("/api/project", headers=h).json()
        if verdict["new"] > verdict["current"]:
            assert verdict["promoted"] and project["prelabeler"] == "loop-ocr-1"
        else:
            assert not verdict["promoted"] and project["prelabeler"] == "ocr"
