"""The Ray executor against the local one: the same proposals byte for byte in the
exported COCO (coco128 with a detector; the MMOCR toy set with the OCR model), the same
evaluation, a worker killed mid-job costing nothing but time, a driver killed mid-job
resumed with every image pre-labeled once; and the errors a user gets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labelpilot.active.select import Embedding, plan_select, repeat_selection
from labelpilot.annotations import Quad
from labelpilot.errors import LabelPilotError, ModelError, ValidationError
from labelpilot.evaluation.run import evaluate_model
from labelpilot.executors import ExecutorSpec, ImageRef, open_executor, plan_work
from labelpilot.executors.locations import S3Blobs
from labelpilot.executors.work import Worker
from labelpilot.jobs import engine, kinds
from labelpilot.jobs.autolabel import plan_autolabel
from labelpilot.models.catalogue import install
from labelpilot.store import annotations as annotation_rows
from labelpilot.store import repo, scores
from labelpilot.transfer import export_dataset, import_dataset
from labelpilot.workspace import Workspace

pytestmark = pytest.mark.xdist_group("ray")  # one cluster per test process: run together
LABELPILOT = Path(sys.executable).parent / "labelpilot"


def only_on_workers(monkeypatch: pytest.MonkeyPatch, *more: tuple[Any, str]) -> None:
    """From now on the per-image work (`Worker.run`, and `more`) fails in this process:
    what passes runs in the cluster's worker processes, not here."""
    def here(*_: Any, **__: Any) -> Any:
        raise AssertionError("the per-image work ran in the test process, not on Ray")

    for owner, name in [(Worker, "run"), *more]:
        monkeypatch.setattr(owner, name, here)


def coco_images(shared: Path, folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for f in sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:count]:
        shutil.copy(f, folder / f.name)
    return folder


def ocr_images(shared: Path) -> Path:
    return shared / "datasets" / "mmocr_toy" / "det_toy_dataset" / "imgs" / "test"


def new_workspace(path: Path, task: str, images: Path, shared: Path,
                  database_url: str | None = None) -> Workspace:
    ws = Workspace.create(path, task=task, labels=[] if task == "detect" else ["text"],
                          database_url=database_url)
    import_dataset(ws, images, format="images")
    if task == "detect":
        install(ws.models_dir, "yolox-nano", str(shared / "models"))
    return ws


def prelabel(ws: Workspace, model: str, executor: ExecutorSpec | None = None
             ) -> engine.JobInfo:
    kind, params = plan_autolabel(ws, model=model, unmapped="add", executor=executor)
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind=kind, user="test", params=params)
    return engine.run_job(ws, job.id, kinds.HANDLERS)


def coco_bytes(ws: Workspace, dest: Path) -> bytes:
    export_dataset(ws, dest, format="coco", status="all", include_images=False)
    (found,) = list(dest.rglob("*.json"))
    return found.read_bytes()


@pytest.mark.parametrize(("task", "model"), [("detect", "yolox-nano"), ("ocr", "ocr")])
def test_ray_prelabels_exactly_as_the_local_executor(
        task: str, model: str, make_workspace: Any, tmp_path: Path, shared: Path,
        ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    images = (coco_images(shared, tmp_path / "imgs", 10) if task == "detect"
              else ocr_images(shared))
    local = new_workspace(tmp_path / "local", task, images, shared)
    assert prelabel(local, model).status == "done"
    # the Ray run writes to the database under test (SQLite or PostgreSQL)
    probe = make_workspace(task=task)
    url = probe.config.database_url
    probe.close()
    remote = new_workspace(tmp_path / "remote", task, images, shared, database_url=url)
    spec = ExecutorSpec("ray", ray_cluster, workers=2)
    with monkeypatch.context() as patch:
        only_on_workers(patch)
        job = prelabel(remote, model, spec)
    assert job.status == "done", job.error
    assert job.result and job.result["executor"] == "ray" and job.result["failed_images"] == []
    assert job.params["executor"]["address"] == ray_cluster
    want = coco_bytes(local, tmp_path / "a")
    got = coco_bytes(remote, tmp_path / "b")
    assert len(json.loads(want)["annotations"]) >= 10
    assert got == want
    if task == "detect":  # evaluation too: the proposals accepted as truth, then scored
        with local.transaction() as conn:
            ids = [int(a.id or 0) for found in repo.annotations_for_images(
                conn, [r.id for r in repo.list_images(conn)]).values() for a in found]
            annotation_rows.set_status(conn, ids, status="accepted", username="test",
                                       when=repo.now())
        mine = evaluate_model(local, model_name=model, split=None)
        with monkeypatch.context() as patch:
            only_on_workers(patch)
            theirs = evaluate_model(local, model_name=model, split=None, executor=spec)
        assert theirs == mine and mine["map50"] > 0.9
    local.close()
    remote.close()


def test_ray_workers_read_images_from_an_object_store(
        tmp_path: Path, shared: Path, ray_cluster: str, s3_endpoint: str, bucket: str) -> None:
    images = coco_images(shared, tmp_path / "imgs", 10)
    local = new_workspace(tmp_path / "local", "detect", images, shared)
    assert prelabel(local, "yolox-nano").status == "done"
    ws = new_workspace(tmp_path / "remote", "detect", images, shared)
    spec = ExecutorSpec("ray", ray_cluster, workers=2, blobs=f"s3://{bucket}/ws",
                        s3_endpoint=s3_endpoint)
    with ws.engine.connect() as conn:
        refs = [ImageRef.of(r) for r in repo.list_images(conn)]
    executor: Any = open_executor(spec)
    work = plan_work(ws, "yolox-nano", "prelabel")
    first = list(executor.map(work, refs[:4]))  # the driver sends what the workers need
    assert executor.sent == 4 and all(found for _, found in first)
    assert S3Blobs(spec.blobs or "", s3_endpoint).push(ws.blobs, refs) == 6
    ws.blobs.root.rename(tmp_path / "moved")  # from now on only the store has the images
    job = prelabel(ws, "yolox-nano", spec)
    assert job.status == "done" and job.result and job.result["failed_images"] == [], job.error
    assert job.params["executor"]["blobs"] == f"s3://{bucket}/ws"
    assert coco_bytes(ws, tmp_path / "b") == coco_bytes(local, tmp_path / "a")
    ws.close()
    local.close()


def test_ray_scores_the_tries_of_models_optimize_as_locally(
        tmp_path: Path, shared: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelpilot.evaluation import run as evaluation_run
    from labelpilot.optimize.gate import OptimizeConfig, optimize_model
    from tests.coco128 import detect_workspace

    ws = detect_workspace(lambda **kw: Workspace.create(tmp_path / "ws", **kw), tmp_path,
                          shared, ["person"], classes=["person"], train=10, test=6)
    spec = ExecutorSpec("ray", ray_cluster, workers=2)
    # a gate nothing passes: the first INT8 try is made, scored and refused
    cfg = OptimizeConfig(min_speedup=100, max_loss=100, images=8, method="minmax")
    here = optimize_model(ws, "yolox-nano", cfg)
    only_on_workers(monkeypatch, (evaluation_run, "shown_detections"))
    there = optimize_model(ws, "yolox-nano", replace(cfg, executor=spec.params()))
    assert there["fp32"] == here["fp32"] and here["fp32"]["map50"] > 0.3
    (mine,), (theirs,) = here["tries"], there["tries"]
    assert theirs["scores"] == mine["scores"] and theirs["size_bytes"] == mine["size_bytes"]
    assert not theirs["kept"] and "at least 100x asked" in theirs["reason"]
    ws.close()


def test_ray_reads_an_ocr_candidates_parts_and_refuses_altered_files(
        tmp_path: Path, shared: Path, ray_cluster: str) -> None:
    from labelpilot.executors import plan_candidate
    from labelpilot.models.ocr import builtin_manifest
    from labelpilot.models.registry import load_ocr
    from labelpilot.optimize.subjects import OcrParts

    ws = new_workspace(tmp_path / "ws", "ocr", ocr_images(shared), shared)
    assert prelabel(ws, "ocr").status == "done"  # the proposed quads stand for the truth
    with ws.engine.connect() as conn:
        rows = repo.list_images(conn)
        anns = repo.annotations_for_images(conn, [r.id for r in rows])
    refs = [ImageRef.of(r, [a.shape.corners() for a in anns.get(r.id, [])
                            if isinstance(a.shape, Quad)]) for r in rows]
    assert sum(len(r.quads) for r in refs) >= 10
    model = load_ocr("ocr", None, threads=1)
    op = OcrParts(det=True, rec=True)
    want = [op.run(model, ws.blobs.load_image(r), r) for r in refs]
    executor = open_executor(ExecutorSpec("ray", ray_cluster, workers=2))
    manifest = builtin_manifest()
    got = [found for _, found in executor.map(plan_candidate(ws, manifest, op), refs)]
    assert got == want and sum(len(texts) for _, texts in got) >= 10
    # a candidate's file that is not the one measured: the workers refuse to run it
    det, sha = manifest.file("det")
    copy = tmp_path / "det.onnx"
    copy.write_bytes(det.read_bytes()[:-8])
    altered = manifest.with_variant_files({"det": (copy, sha)})
    with pytest.raises(LabelPilotError, match=r"det\.onnx has SHA-256"):
        list(executor.map(plan_candidate(ws, altered, op), refs[:2]))
    ws.close()


def select(ws: Workspace, executor: ExecutorSpec | None = None, **kw: Any) -> dict[str, Any]:
    params = plan_select(ws, executor=executor, **kw)
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="select", user="test", params=params.public())
    done = engine.run_job(ws, job.id, kinds.HANDLERS)
    assert done.status == "done" and done.result is not None, done.error
    return done.result


def stored_scores(ws: Workspace, source: str) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        rows = {r.id: r.file_name for r in repo.list_images(conn)}
        got = scores.scores_for(conn, source, list(rows))
    return {rows[i]: v for i, v in got.items()}


def segment_images(shared: Path, folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for f in sorted((shared / "datasets" / "grabcut" / "data_GT").iterdir())[:count]:
        shutil.copy(f, folder / f.name)
    return folder


@pytest.mark.parametrize(("task", "model", "strategy"), [
    ("detect", "yolox-nano", "hybrid"), ("ocr", "ocr", "uncertainty"),
    ("segment", "graphcut", "hybrid")])
def test_ray_scores_and_embeds_for_active_learning_as_locally(
        task: str, model: str, strategy: str, tmp_path: Path, shared: Path,
        ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    images = (coco_images(shared, tmp_path / "imgs", 12) if task == "detect"
              else ocr_images(shared) if task == "ocr"
              else segment_images(shared, tmp_path / "imgs", 3))
    runs = []
    for name, spec in (("local", None), ("ray", ExecutorSpec("ray", ray_cluster, workers=2))):
        ws = new_workspace(tmp_path / name, task, images, shared)
        if task == "ocr":  # OCR scores read the quads the images have (here proposed)
            assert prelabel(ws, model).status == "done"
        budget = 2 if task == "segment" else 5
        if spec is not None:
            only_on_workers(monkeypatch)
        result = select(ws, spec, strategy=strategy, budget=budget, model=model)
        # a new model version's re-run of the selection runs where it ran
        again = repeat_selection(ws, plan_select(ws, strategy=strategy, budget=budget,
                                                 model=model, executor=spec).public(), model)
        assert again is not None and again.executor == (spec.params() if spec else None)
        with ws.engine.connect() as conn:
            vectors = scores.embeddings_for(conn, Embedding(
                "detect" if task == "detect" else "segmenter").load(model, ws.models_dir, 1).key,
                [r.sha256 for r in repo.list_images(conn)]) if task != "ocr" else {}
        runs.append((result, stored_scores(ws, result["model"]), vectors))
        ws.close()
    (local, local_scores, local_vectors), (remote, remote_scores, remote_vectors) = runs
    assert remote["selected"] == local["selected"]
    assert len(local["selected"]) == (2 if task == "segment" else 5)
    assert remote_scores == local_scores
    assert len(local_scores) == {"detect": 12, "ocr": 10, "segment": 3}[task]
    assert remote_vectors == local_vectors
    if task != "ocr":  # hybrid: every image embedded (the 3 x budget candidates)
        assert len(local_vectors) == {"detect": 12, "segment": 3}[task]
    assert remote["computed"] == local["computed"] > 0
    assert (local["executor"], remote["executor"]) == ("local", "ray")


def test_a_worker_killed_mid_job_costs_only_time(tmp_path: Path, shared: Path,
                                                 ray_cluster: str) -> None:
    ws = new_workspace(tmp_path / "ws", "detect", coco_images(shared, tmp_path / "i", 24),
                       shared)
    with ws.engine.connect() as conn:
        refs = [ImageRef.of(r) for r in repo.list_images(conn)]
    work = plan_work(ws, "yolox-nano", "prelabel")
    want = [found for _, found in open_executor(ExecutorSpec()).map(work, refs)]
    executor: Any = open_executor(ExecutorSpec("ray", ray_cluster, workers=2))
    got = []
    killed = []
    with closing(executor.map(work, refs)) as results:
        for _, found in results:
            got.append(found)
            if len(got) == 3:  # one worker's process dies with images queued at it
                killed = executor.worker_pids()[:1]
                os.kill(killed[0], signal.SIGKILL)
    assert killed
    assert got == want  # every image, once, in order, as the local executor gave them
    ws.close()


def job_row(ws: Workspace, job_id: int) -> engine.JobInfo:
    with ws.engine.connect() as conn:
        return engine.get_job(conn, job_id)


def test_a_driver_killed_mid_job_resumes_with_every_image_once(
        tmp_path: Path, shared: Path, ray_cluster: str) -> None:
    images = coco_images(shared, tmp_path / "i", 40)  # more than one commit's worth
    local = new_workspace(tmp_path / "local", "detect", images, shared)
    assert prelabel(local, "yolox-nano").status == "done"
    ws = new_workspace(tmp_path / "ws", "detect", images, shared)
    env = {**os.environ, "LABELPILOT_JOB_ITEM_DELAY": "0.4"}
    driver = subprocess.Popen(
        [str(LABELPILOT), "autolabel", str(ws.root), "--model", "yolox-nano", "--unmapped",
         "add", "--executor", "ray", "--ray-address", ray_cluster, "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    job = None
    while time.monotonic() < deadline and driver.poll() is None:
        with ws.engine.connect() as conn:
            jobs = engine.list_jobs(conn)
        if jobs and jobs[0].done >= 1:
            job = jobs[0]
            break
        time.sleep(0.2)
    assert job is not None, driver.communicate()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    half = job_row(ws, job.id)
    assert half.status == "running" and 1 <= half.done < 40
    resumed = subprocess.run([str(LABELPILOT), "jobs", "run", str(ws.root), "--json"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    (after,) = json.loads(resumed.stdout)
    assert after["status"] == "done" and after["done"] == 40
    assert coco_bytes(ws, tmp_path / "b") == coco_bytes(local, tmp_path / "a")
    ws.close()
    local.close()


def test_what_the_executor_options_refuse(tmp_path: Path, shared: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="for the ray executor"):
        ExecutorSpec("local", workers=2)
    with pytest.raises(ValidationError, match="must be one of local, ray"):
        ExecutorSpec("dask")
    with pytest.raises(ValidationError, match="1 to 4096"):
        ExecutorSpec("ray", workers=0)
    assert ExecutorSpec.from_params(ExecutorSpec("ray", "auto", 3).params()) \
        == ExecutorSpec("ray", "auto", 3)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(LabelPilotError) as e:
        open_executor(ExecutorSpec("ray"))
    assert "labelpilot[ray]" in (e.value.hint or "")
    # a worker that sees another version of the model than the driver refuses to run it
    ws = new_workspace(tmp_path / "ws", "detect", coco_images(shared, tmp_path / "i", 1),
                       shared)
    with ws.engine.connect() as conn:
        (row,) = repo.list_images(conn)
    work = plan_work(ws, "yolox-nano", "prelabel")
    stale = Worker(type(work)(**{**work.__dict__, "version": "other"}))
    with pytest.raises(ModelError, match="same models folder"):
        stale.run(ImageRef.of(row))
    assert Worker(work).run(ImageRef.of(row))  # the right one does
    with pytest.raises(ValidationError, match="segment everything runs in the job's process"):
        plan_autolabel(ws, model="graphcut", executor=ExecutorSpec("ray"))
    ws.close()


def test_more_workers_than_the_cluster_has_is_said(ray_cluster: str) -> None:
    with pytest.raises(LabelPilotError, match="has 2 CPU"):
        open_executor(ExecutorSpec("ray", ray_cluster, workers=3))


def test_the_server_runs_autolabel_on_its_ray_cluster(tmp_path: Path, shared: Path,
                                                      ray_cluster: str) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from labelpilot.settings import Settings
    from tests.server.conftest import PASSWORD, add_users

    ws = new_workspace(tmp_path / "ws", "detect", coco_images(shared, tmp_path / "i", 4),
                       shared)
    add_users(ws)
    settings = Settings(ray_address=ray_cluster, ray_workers=2, job_workers=1)
    with TestClient(create_app(ws, settings)) as client:
        tok = client.post("/api/auth/token", data={"username": "admin",
                                                   "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        r = client.post("/api/autolabel", headers=h, json={
            "model": "yolox-nano", "unmapped": "add", "executor": "ray"})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["executor"] == {
            "kind": "ray", "address": ray_cluster, "workers": 2, "gpus_per_worker": 0.0}
        deadline = time.monotonic() + 120
        while (job := client.get(f"/api/jobs/{r.json()['id']}", headers=h).json()
               )["status"] not in engine.TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["status"] == "done", job["error"]
        assert job["result"]["executor"] == "ray" and job["result"]["added"] > 0
        # the request picks local or ray, never where the cluster is
        bad = client.post("/api/autolabel", headers=h, json={
            "model": "yolox-nano", "executor": "ray", "ray_address": "10.0.0.1:6379"})
        assert bad.status_code == 422
    ws.close()
