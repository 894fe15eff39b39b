"""Model serving: LabelPilot's model server against the two ways people serve a model
today, on the same ONNX file, the same images and the same CPU threads, in one run.

- `labelpilot`: `labelpilot serve-models` (dynamic batching, the batch axis added to the
  single-image graph, a bounded queue);
- `plain`: a FastAPI endpoint that runs the model once per request (a synchronous route
  in FastAPI's thread pool: how most ML backends are written);
- `litserve`: LitServe from PyPI with its batching on (`max_batch_size`, `batch_timeout`),
  running the same batched session through `predict_batch`.

Each server runs in a process of its own: the plain endpoint with ONNX Runtime's default
threads (every core), LabelPilot and LitServe with one batch worker per core on one thread
each (`--workers`; on a CPU a run per core uses the cores better than one run over all of
them: the model alone is timed first, one image and a batch on one thread and on every
core, in core-ms per image; not for OCR, a pipeline of several networks). The clients
(httpx, asyncio) run in this process and send coco128 images (`--model ocr`: the ICDAR
2015 samples) as base64 JSON (every server reads the same body). The servers run side
by side and take turns, round after round, so that the machine's noise falls on each
alike. For each number of concurrent clients, the rounds pooled: requests/s,
p50/p95 latency, the share of errors, and the ratio to the plain endpoint. Then the
server's memory (RSS) with three models loaded.

Usage:
    python benchmarks/serving.py [--model yolox-nano] [--clients 1,8,32,64]
        [--requests 128] [--rounds 3] [--threads N] [--workers N] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
TOOLS = ("labelpilot", "plain", "litserve")


# ---- the two reference servers (run as `serving.py --serve TOOL ...`) -------------------
def load_model(ws_dir: Path, name: str, threads: int, batch: bool) -> Any:
    from labelpilot.models.registry import open_predictor

    model, _, _ = open_predictor(name, Path(ws_dir) / "models", threads=threads)
    if batch and hasattr(model, "enable_batching"):
        print("batching:", model.enable_batching().note, flush=True)
    return model


def image_of(body: dict[str, Any]) -> Any:
    from labelpilot.imageio import decode_bgr

    return decode_bgr(base64.b64decode(body["image"]), name="image")


def answer(proposals: list[Any]) -> dict[str, Any]:
    return {"predictions": [{"label": a.label, "shape": a.shape.to_dict(), "score": a.score,
                             "text": a.text} for a in proposals]}


def serve_plain(ws_dir: Path, name: str, port: int, threads: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    model = load_model(ws_dir, name, threads, batch=False)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:  # FastAPI's thread pool
        return answer(model.predict(image_of(body)))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


try:  # at the top level: LitServe starts its workers by spawning, which pickles the API
    import litserve as ls

    class LitModel(ls.LitAPI):  # type: ignore[misc]
        """The model behind LitServe, batched by LitServe, run by `predict_batch`."""

        def __init__(self, ws_dir: Path, name: str, threads: int, **kw: Any) -> None:
            super().__init__(**kw)
            self.ws_dir, self.name, self.threads = ws_dir, name, threads

        def setup(self, device: str) -> None:
            self.model = load_model(self.ws_dir, self.name, self.threads, batch=True)

        # no annotations: LitServe reads them to type its endpoint (a JSON body then)
        def decode_request(self, request):  # type: ignore[no-untyped-def]
            return image_of(request)

        def batch(self, inputs: list[Any]) -> list[Any]:
            return inputs

        def predict(self, images: list[Any]) -> list[Any]:
            return self.model.predict_batch(images)  # type: ignore[no-any-return]

        def unbatch(self, output: list[Any]) -> list[Any]:
            return output

        def encode_response(self, output):  # type: ignore[no-untyped-def]
            return answer(output)
except ImportError:
    ls = None


def serve_litserve(ws_dir: Path, name: str, port: int, threads: int, workers: int,
                   max_batch: int, wait_s: float) -> None:
    if ls is None:
        raise SystemExit("pip install 'labelpilot[bench]' (litserve) for this reference")
    api = LitModel(ws_dir, name, threads, max_batch_size=max_batch, batch_timeout=wait_s)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, timeout=60)
    server.run(port=port, generate_client_file=False, log_level="warning")


# ---- the driver --------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tool: str, ws_dir: Path, model: str, threads: int, workers: int, key: str,
          max_batch: int, wait_ms: float, models: str | None = None) -> tuple[subprocess.Popen[bytes], str,
                                                                dict[str, str]]:
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    if tool == "labelpilot":
        cmd = [sys.executable, "-m", "labelpilot.cli", "serve-models", str(ws_dir),
               "--models", models or model, "--port", str(port), "--workers", str(workers),
               "--max-batch", str(max_batch), "--max-wait-ms", str(wait_ms),
               "--queue-size", "1024", "--watch-s", "0"]
        url, ready, headers = (f"http://127.0.0.1:{port}/v1/models/{model}/predict",
                               f"http://127.0.0.1:{port}/readyz",
                               {"Authorization": f"Bearer {key}"})
    else:
        cmd = [sys.executable, __file__, "--serve", tool, "--workspace", str(ws_dir),
               "--model", model, "--port", str(port), "--threads", str(threads),
               "--workers", str(workers),
               "--max-batch", str(max_batch), "--wait-ms", str(wait_ms)]
        url, ready, headers = (f"http://127.0.0.1:{port}/predict",
                               f"http://127.0.0.1:{port}/health", {})
    # the server's log goes to a file: a pipe nobody reads would block it once full
    log = ws_dir.parent / f"{tool}-{port}.log"
    with open(log, "wb") as sink:
        # a process group of its own: LitServe forks its HTTP servers and spawns its
        # workers, which outlive a terminated parent (and would load the next runs)
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                return proc, url, headers
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{tool} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"{tool} did not get ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process it started (its process group)."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)  # anyone of the group left?
            except ProcessLookupError:
                return
            time.sleep(0.2)


async def load(url: str, headers: dict[str, str], bodies: list[bytes], clients: int,
               requests: int) -> tuple[list[float], float, int]:
    """`clients` concurrent clients send `requests` requests: their latencies (s), the
    wall time and the number that failed."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    h = {**headers, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one_client() -> None:
            nonlocal sent, errors
            while sent < requests:
                body = bodies[sent % len(bodies)]
                sent += 1
                t = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=h)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

        # warm-up: every connection once
        warm = [client.post(url, content=bodies[0], headers=h) for _ in range(clients)]
        await asyncio.gather(*warm, return_exceptions=True)
        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, wall, errors


def summary(runs: list[tuple[list[float], float, int]]) -> dict[str, float]:
    """Rounds pooled: requests over wall time, latency quantiles, error share."""
    lat = [x for r in runs for x in r[0]]
    q = statistics.quantiles(lat, n=100)
    return {"requests_per_s": len(lat) / sum(r[1] for r in runs), "p50_ms": q[49] * 1000,
            "p95_ms": q[94] * 1000, "errors": sum(r[2] for r in runs) / len(lat)}


def model_alone(ws_dir: Path, name: str, cores: int, batch: int) -> dict[str, float]:
    """Core-milliseconds per image of the bare network: one image or a batch, on one
    thread or on every core."""
    import numpy as np

    from labelpilot.models.registry import get_manifest
    from labelpilot.models.runtime import OrtSession

    manifest = get_manifest(name, Path(ws_dir) / "models")
    if "model" not in manifest.files:  # OCR: a pipeline of several networks
        return {}
    path, sha = manifest.file("model")
    out = {}
    for threads in (1, cores):
        session = OrtSession(path, sha256=sha, threads=threads)
        session.enable_batching()
        shape = [d if isinstance(d, int) else 1 for d in session.session.get_inputs()[0].shape]
        x = np.random.default_rng(0).random((batch, *shape[1:]), dtype=np.float32)
        for n in (1, batch):
            session(x[:n])
            start, done = time.perf_counter(), 0
            while time.perf_counter() - start < 2.0:
                session(x[:n])
                done += n
            out[f"batch {n}, {threads} thread(s)"] = \
                (time.perf_counter() - start) / done * 1000 * threads
    return out


def rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20


def make_workspace(folder: Path) -> tuple[Path, str]:
    from labelpilot import users
    from labelpilot.models.catalogue import install
    from labelpilot.workspace import Workspace

    ws = Workspace.create(folder / "ws", task="detect", labels=["person"])
    for name in ("yolox-nano", "nanodet-m"):
        install(ws.models_dir, name, str(SHARED / "models"))
    with ws.transaction() as conn:
        user = users.add_user(conn, username="bench", password="bench password 1",
                              role="annotator")
        key = users.issue_token(conn, user)[0]
    ws.close()
    return ws.root, key


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="yolox-nano")
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--requests", type=int, default=128, help="per round and client count")
    ap.add_argument("--rounds", type=int, default=3)
    cores = os.cpu_count() or 1
    ap.add_argument("--threads", type=int, default=cores,
                    help="the plain endpoint's ONNX Runtime threads (its default: every core)")
    ap.add_argument("--workers", type=int, default=cores,
                    help="LabelPilot's and LitServe's batch workers, each on cores/workers "
                         "threads")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--wait-ms", type=float, default=5.0)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--json", type=Path)
    # internal: run one reference server
    ap.add_argument("--serve", choices=("plain", "litserve"))
    ap.add_argument("--workspace", type=Path)
    ap.add_argument("--port", type=int)
    a = ap.parse_args()
    if a.serve == "plain":
        serve_plain(a.workspace, a.model, a.port, a.threads)
        return
    if a.serve == "litserve":
        serve_litserve(a.workspace, a.model, a.port, max(1, cores // a.workers), a.workers,
                       a.max_batch, a.wait_ms / 1000)
        return

    tmp = Path(tempfile.mkdtemp(prefix="lp-serving-"))
    ws_dir, key = make_workspace(tmp)
    if a.model == "ocr":  # text scenes: the ICDAR 2015 samples
        images = sorted((SHARED / "datasets" / "mmocr_toy" / "det_toy_dataset" / "imgs"
                         / "test").glob("*.jpg"))
    else:
        images = sorted((SHARED / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:32]
    bodies = [json.dumps({"image": base64.b64encode(p.read_bytes()).decode()}).encode()
              for p in images]
    alone = model_alone(ws_dir, a.model, cores, a.max_batch)
    print("the network alone, core-ms per image: " + ", ".join(
        f"{k}: {v:.1f}" for k, v in alone.items()), flush=True)
    clients = [int(c) for c in a.clients.split(",")]
    tools = [t for t in a.tools.split(",") if t]
    results: dict[str, dict[int, dict[str, float]]] = {t: {} for t in tools}
    memory: dict[str, float] = {}
    servers: dict[str, tuple[subprocess.Popen[bytes], str, dict[str, str]]] = {}
    try:
        for tool in tools:  # all up at once; the rounds take turns (the machine's noise
            servers[tool] = start(tool, ws_dir, a.model, a.threads, a.workers, key,
                                  a.max_batch, a.wait_ms)  # then falls on every tool alike)
        for c in clients:
            n = max(a.requests, 4 * c)
            runs: dict[str, list[tuple[list[float], float, int]]] = {t: [] for t in tools}
            for _ in range(a.rounds):
                for tool in tools:
                    _, url, headers = servers[tool]
                    runs[tool].append(asyncio.run(load(url, headers, bodies, c, n)))
            for tool in tools:
                results[tool][c] = summary(runs[tool])
                print(tool, c, {k: round(v, 3) for k, v in results[tool][c].items()},
                      flush=True)
        for tool, (proc, _, _) in servers.items():
            memory[tool] = rss_mb(proc.pid)
    finally:
        for proc, _, _ in servers.values():
            stop(proc)
    try:  # the model server with three models loaded
        proc, _, _ = start("labelpilot", ws_dir, a.model, a.threads, a.workers, key,
                           a.max_batch, a.wait_ms, models="yolox-nano,nanodet-m,ocr")
        memory["labelpilot, 3 models"] = rss_mb(proc.pid)
        stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{a.model} on {cores} cores; plain: {a.threads} ONNX threads per run; "
          f"labelpilot and litserve: {a.workers} batch workers of {max(1, cores // a.workers)} "
          f"thread(s), batches up to {a.max_batch} gathered for {a.wait_ms:g} ms; base64 JSON "
          f"bodies of {len(images)} {'ICDAR 2015' if a.model == 'ocr' else 'coco128'} images\n")
    head = f"{'clients':>7} | " + " | ".join(f"{t:>28}" for t in tools)
    print(head + "\n" + "-" * len(head))
    for c in clients:
        cells = []
        for t in tools:
            r = results[t][c]
            cells.append(f"{r['requests_per_s']:6.1f}/s p50 {r['p50_ms']:5.0f} "
                         f"p95 {r['p95_ms']:5.0f}" + (" !" if r["errors"] else "  "))
        print(f"{c:>7} | " + " | ".join(f"{x:>28}" for x in cells))
    if "plain" in tools:
        print("\nrequests/s as a multiple of the plain endpoint's:")
        for c in clients:
            base = results["plain"][c]["requests_per_s"]
            print(f"{c:>7} clients: " + ", ".join(
                f"{t} {results[t][c]['requests_per_s'] / base:.2f}x" for t in tools
                if t != "plain"))
    print("\nserver memory (RSS, MB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    if a.json:
        a.json.write_text(json.dumps({"results": results, "memory_mb": memory,
                                      "network_core_ms_per_image": alone}, indent=1))


if __name__ == "__main__":
    main()
