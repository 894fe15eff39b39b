"""Scale-out: the Ray executor against the local one on the same 1,000 images in the same
run, and the scaling model (where the one store writer, not inference, becomes the limit).

The images: coco128's 128 images, each in eight variants (mirrored and cropped by a few
pixels: distinct content, so no blob is shared), 1,000 in all, JPEG. The model: yolox-nano
(the detector a project starts from), pre-labeling every image (`autolabel`, all classes
added), on this machine's 2 cores:

- local: the job with the local executor (two images in flight, one ONNX thread each);
- ray: the same job with `--executor ray` on a cluster `ray start --head` made on this
  machine (2 CPUs: two actors, one ONNX thread each), timed from submitting the job to
  its end (actors started and the model loaded in it); the cluster's start is said apart.
  Both runs' exported COCO files are compared byte for byte.
- ray + S3: the same job with the workers reading the images from an S3-compatible store
  (`--blobs s3://...`; moto's server on 127.0.0.1, a Python process on the same 2 cores,
  so a lower bound on a real store's speed), once with the driver sending the 1,000
  images in the run and once with them already there;
- per-image cost: one worker running the images one after another (no writes);
- the store writer: the proposals of the run written again into a fresh workspace on
  SQLite and on PostgreSQL, as the job writes them (each image's proposals with its job
  item), one image per transaction and 16 (the jobs' group commit): images/s and
  annotation rows/s;
- the model: throughput(n workers) = min(n / cost, writer ceiling); the worker count at
  which the writer binds is ceiling x cost. Plot: benchmarks/out/scaleout.png.

Usage:
    python benchmarks/scaleout.py [--images 1000] [--model yolox-nano] [--postgres URL]
                                  [--no-s3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
SHARED = Path(os.environ.get("LABELPILOT_SHARED",
                             Path(__file__).resolve().parents[2] / "shared"))
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCHES = (1, 16)  # images per transaction: one (each its own commit), the jobs' default


def make_images(folder: Path, count: int) -> Path:
    """`count` distinct JPEGs from coco128: mirrored and/or cropped variants."""
    import cv2

    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = sorted((SHARED / "datasets" / "coco128" / "train2017").glob("*.jpg"))
    for k in range(count):
        image = cv2.imread(str(sources[k % len(sources)]))
        assert image is not None, sources[k % len(sources)]
        variant = k // len(sources)
        if variant & 1:
            image = image[:, ::-1]
        cut = 4 * (variant // 2)
        if cut:
            image = image[cut:-cut, cut:-cut]
        cv2.imwrite(str(folder / f"{k:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def workspace(path: Path, images: Path, model: str, db_url: str | None = None) -> Any:
    from labelpilot.models.catalogue import install
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    shutil.rmtree(path, ignore_errors=True)
    ws = Workspace.create(path, task="detect", labels=[], database_url=db_url)
    import_dataset(ws, images, format="images")
    install(ws.models_dir, model, str(SHARED / "models"))
    return ws


def autolabel(ws: Any, model: str, executor: Any = None) -> tuple[float, Any]:
    from labelpilot.jobs import engine, kinds
    from labelpilot.jobs.autolabel import plan_autolabel

    kind, params = plan_autolabel(ws, model=model, unmapped="add", executor=executor)
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind=kind, user="bench", params=params)
    t = time.perf_counter()
    job = engine.run_job(ws, job.id, kinds.HANDLERS)
    took = time.perf_counter() - t
    if job.status != "done":
        raise SystemExit(f"autolabel {job.status}: {job.error}")
    return took, job


def coco_bytes(ws: Any, dest: Path) -> bytes:
    from labelpilot.transfer import export_dataset

    shutil.rmtree(dest, ignore_errors=True)
    export_dataset(ws, dest, format="coco", status="all", include_images=False)
    (found,) = list(dest.rglob("*.json"))
    return found.read_bytes()


class RayHead:
    """`ray start --head --block` on 127.0.0.1 with 2 CPUs and token authentication."""

    def __init__(self, log: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.log = log
        t = time.perf_counter()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                 f"--port={self.address.split(':')[1]}", "--node-ip-address=127.0.0.1",
                 "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        while b"Ray runtime started" not in log.read_bytes():
            if self.proc.poll() is not None:
                raise SystemExit(f"ray start failed:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        self.start_s = time.perf_counter() - t

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


class S3Server:
    """moto's S3 server on 127.0.0.1 with a new bucket; made-up credentials in this
    process's environment (and so in the Ray head's, started after it)."""

    def __init__(self) -> None:
        import logging
        import socket

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request

        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.bucket = "labelpilot-bench"
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        self.server.stop()


def per_image_cost(ws: Any, model: str, count: int) -> tuple[float, list[Any]]:
    """Seconds per image of one worker (one core, no writes), and the refs it ran."""
    from labelpilot.executors import ImageRef, plan_work
    from labelpilot.executors.work import Worker
    from labelpilot.store import repo

    with ws.engine.connect() as conn:
        refs = [ImageRef.of(r) for r in repo.list_images(conn)][:count]
    worker = Worker(plan_work(ws, model, "prelabel"))
    worker.run(refs[0])  # the model loaded
    t = time.perf_counter()
    for ref in refs:
        worker.run(ref)
    return (time.perf_counter() - t) / len(refs), refs


def writer_ceiling(source: Any, target: Any, batch: int) -> dict[str, float]:
    """The proposals `source` holds written again into `target` (same images), as a job
    writes them (`ProposalWriter`: `batch` images per transaction, each with its job
    item); the results all ready, so this is the writer's ceiling."""
    from labelpilot.jobs import engine, kinds
    from labelpilot.jobs.autolabel import ProposalWriter
    from labelpilot.store import repo

    with source.engine.connect() as conn:
        rows = repo.list_images(conn)
        found = repo.annotations_for_images(conn, [r.id for r in rows])
    with target.engine.connect() as conn:
        ids = {r.sha256: r.id for r in repo.list_images(conn)}
    work = [(ids[r.sha256], found.get(r.id, [])) for r in rows]
    with target.transaction() as conn:
        job = kinds.submit(conn, kind="autolabel", user="bench", params={"model": "replay"})
    writer = ProposalWriter(engine.JobContext(target, job), batch=batch, wait_s=3600)
    t = time.perf_counter()
    for image_id, anns in work:
        writer.add(image_id, [replace(a, id=None) for a in anns])
    writer.flush()
    took = time.perf_counter() - t
    n_anns = sum(len(a) for _, a in work)
    return {"images_per_s": len(work) / took, "rows_per_s": n_anns / took,
            "annotations": n_anns, "images": len(work)}


def plot(cost: float, ceilings: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = int(max(ceilings.values()) * cost * 1.6) + 2
    n = list(range(1, top + 1))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(n, [k / cost for k in n], "--", color="grey", label="inference alone (n / cost)")
    for name, ceiling in ceilings.items():
        ax.plot(n, [min(k / cost, ceiling) for k in n], label=f"with the {name} writer")
        ax.axvline(ceiling * cost, color="lightgrey", lw=0.8)
    ax.set_xlabel("workers (one CPU each)")
    ax.set_ylabel("images per second")
    ax.set_title("Pre-labeling throughput: measured cost per image, measured writer ceilings")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--model", default="yolox-nano")
    ap.add_argument("--postgres", metavar="URL", default=PG,
                    help="PostgreSQL for the writer's ceiling ('' to leave it out)")
    ap.add_argument("--no-s3", dest="s3", action="store_false",
                    help="leave out the runs reading images from an S3 store (moto)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    work = OUT / "scaleout"
    work.mkdir(exist_ok=True)
    images = make_images(work / "images", args.images)

    from labelpilot.executors import ExecutorSpec

    local = workspace(work / "local", images, args.model)
    local_s, local_job = autolabel(local, args.model)
    print(f"local: {local_s:.1f} s", flush=True)

    s3 = S3Server() if args.s3 else None  # before the head: its workers need credentials
    head = RayHead(work / "ray-head.log")
    s3_runs: dict[str, tuple[float, bool]] = {}
    try:
        remote = workspace(work / "ray", images, args.model)
        ray_s, _ = autolabel(remote, args.model, ExecutorSpec("ray", head.address, 2))
        print(f"ray: {ray_s:.1f} s (cluster start {head.start_s:.1f} s)", flush=True)
        if s3 is not None:
            spec = ExecutorSpec("ray", head.address, 2, blobs=f"s3://{s3.bucket}/bench",
                                s3_endpoint=s3.endpoint)
            for what in ("images sent in the run", "images already in the store"):
                ws = workspace(work / "ray-s3", images, args.model)
                took, _ = autolabel(ws, args.model, spec)
                s3_runs[what] = (took, coco_bytes(ws, work / "c") == coco_bytes(
                    local, work / "a"))
                ws.close()
                print(f"ray + S3, {what}: {took:.1f} s", flush=True)
    finally:
        head.stop()
        if s3 is not None:
            s3.stop()
    same = coco_bytes(local, work / "a") == coco_bytes(remote, work / "b")

    cost, _ = per_image_cost(local, args.model, min(200, args.images))
    ceilings = {}
    for batch in BATCHES:
        ceilings[f"SQLite, {batch}/commit"] = writer_ceiling(
            local, workspace(work / "w-sqlite", images, args.model), batch)
    if args.postgres:
        from sqlalchemy import create_engine, text

        schema = f"lp_bench_{secrets.token_hex(4)}"
        engine = create_engine(args.postgres)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            for batch in BATCHES:
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                pg = workspace(work / "w-pg", images, args.model,
                               f"{args.postgres}?options=-csearch_path%3D{schema}")
                ceilings[f"PostgreSQL, {batch}/commit"] = writer_ceiling(local, pg, batch)
                pg.close()
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()

    n = args.images
    per_image = (local_job.result or {}).get("added", 0) / max(n, 1)
    print(f"\n{n} images, {args.model}, {per_image:.1f} proposals per image, 2 cores\n")
    print("| run | wall s | images/s | vs local |")
    print("|---|--:|--:|--:|")
    print(f"| local executor | {local_s:.1f} | {n / local_s:.1f} | 1.00x |")
    print(f"| ray executor (2 workers) | {ray_s:.1f} | {n / ray_s:.1f} | {ray_s / local_s:.2f}x |")
    for what, (took, same_s3) in s3_runs.items():
        print(f"| ray, images from S3 (moto), {what} | {took:.1f} | {n / took:.1f} | "
              f"{took / local_s:.2f}x{'' if same_s3 else ' (COCO differs!)'} |")
    print(f"\nsame COCO, byte for byte: {same}; Ray cluster start (not in the run): "
          f"{head.start_s:.1f} s; one worker: {cost * 1000:.1f} ms per image "
          f"({1 / cost:.1f} images/s per core)\n")
    print("| store writer | images/s | annotation rows/s | workers at which it binds |")
    print("|---|--:|--:|--:|")
    for name, c in ceilings.items():
        print(f"| {name} | {c['images_per_s']:.0f} | {c['rows_per_s']:.0f} | "
              f"{c['images_per_s'] * cost:.0f} |")
    plot(cost, {k: c["images_per_s"] for k, c in ceilings.items()}, OUT / "scaleout.png")
    (OUT / "scaleout.json").write_text(json.dumps({
        "images": n, "model": args.model, "local_s": local_s, "ray_s": ray_s,
        "ratio": ray_s / local_s, "same_coco": same, "ray_start_s": head.start_s,
        "s3": {k: {"s": t, "same_coco": ok} for k, (t, ok) in s3_runs.items()},
        "cost_s": cost, "proposals_per_image": per_image, "writers": ceilings}, indent=1))
    print(f"\nplot: {OUT / 'scaleout.png'}")


if __name__ == "__main__":
    main()
