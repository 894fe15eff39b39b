"""Load test: simulated annotators against one `labelpilot serve` on loopback.

Each simulated user loops: claim the next image, read its annotations, save 5 edits
(PATCH with the version it read), mark the image done. With `--think 0` they fire the
next request as soon as the last one answers (a stress test: latency is then mostly
queueing, 50 users / throughput); with a think time they pace like people. After the run every acknowledged
edit is checked against the database: zero lost writes is the requirement.

Usage:
    python benchmarks/load_annotators.py [--users 50] [--seconds 60] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
PASSWORD = "load-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int, log: Any,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`labelpilot serve` on the workspace, once it answers /api/health."""
    import httpx

    server = subprocess.Popen([sys.executable, "-m", "labelpilot.cli", "serve", str(root),
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server


def build(root: Path, n_images: int, users: int, db_url: str | None) -> Path:
    import numpy as np
    from argon2 import PasswordHasher
    from PIL import Image

    from labelpilot import users as users_mod
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    shutil.rmtree(root, ignore_errors=True)
    src = root.parent / f"{root.name}-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for i in range(n_images):
        arr = base.copy()
        arr[i % 48, :, 0] = i % 251
        arr[:, (i // 48) % 64, 1] = (i * 7) % 253
        Image.fromarray(arr).save(src / "images" / f"im{i}.png")
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 64, "height": 48})
        for j in range(5):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "bbox": [j * 10, j * 5, 8, 8], "score": 0.5})
    (src / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "part"}]}))
    ws = Workspace.create(root, task="detect", labels=["part"], database_url=db_url)
    import_dataset(ws, src / "annotations.json", format="coco", link=True)
    # Cheap Argon2 parameters for the 50 load-test accounts only (sign-in is not measured).
    users_mod.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with ws.engine.begin() as conn:
        for u in range(users):
            users_mod.add_user(conn, username=f"user{u}", password=PASSWORD, role="reviewer")
        # a server refuses a workspace with users but no admin
        users_mod.add_user(conn, username="admin", password=PASSWORD, role="admin")
    ws.close()
    return root


async def annotator(client: Any, name: str, stop_at: float, lat: list[float],
                    errors: list[str], acked: dict[int, tuple[int, str]], think: float) -> None:
    r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def call(method: str, url: str, **kw: Any) -> Any:
        if think:
            await asyncio.sleep(think)  # the person looks, clicks, types
        t = time.perf_counter()
        resp = await client.request(method, url, headers=h, **kw)
        lat.append(time.perf_counter() - t)
        if resp.status_code >= 400:
            errors.append(f"{method} {url}: {resp.status_code} {resp.text[:100]}")
        return resp

    k = 0
    while time.perf_counter() < stop_at:
        img = await call("POST", "/api/images/next")
        if img.status_code == 204:
            return
        if img.status_code != 200:
            continue
        image_id = img.json()["id"]
        anns = (await call("GET", f"/api/images/{image_id}/annotations")).json()["data"]
        for a in anns[:5]:
            k += 1
            text = f"{name}-{k}"
            resp = await call("PATCH", f"/api/annotations/{a['id']}",
                              json={"version": a["version"], "text": text})
            if resp.status_code == 200:
                acked[a["id"]] = (resp.json()["version"], text)
        await call("PATCH", f"/api/images/{image_id}", json={"review_state": "done"})


async def load(base: str, users: int, seconds: float, think: float) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    acked: dict[int, tuple[int, str]] = {}
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(annotator(client, f"user{u}", stop_at, lat, errors, acked, think)
                               for u in range(users)))
        wall = time.perf_counter() - t0
    return {"latencies": lat, "errors": errors, "acked": acked, "wall": wall}


def verify(root: Path, acked: dict[int, tuple[int, str]]) -> int:
    from sqlalchemy import select

    from labelpilot.store.repo import annotations_t
    from labelpilot.workspace import Workspace

    lost = 0
    with Workspace.open(root) as ws, ws.engine.connect() as conn:
        rows = dict((r.id, (r.version, r.text)) for r in conn.execute(
            select(annotations_t.c.id, annotations_t.c.version, annotations_t.c.text)))
    for ann_id, (version, text) in acked.items():
        if rows.get(ann_id) != (version, text):
            lost += 1
    return lost


def run_one(label: str, users: int, seconds: float, n_images: int, db_url: str | None,
            think: float) -> dict[str, Any]:
    root = OUT / f"load-{label}"
    build(root, n_images, users, db_url)
    port = free_port()

    base = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "wb") as log:
        server = start_server(root, port, log)
        try:
            res = asyncio.run(load(base, users, seconds, think))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    lat = sorted(res["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {"db": label, "think": think, "requests": len(lat), "rps": len(lat) / res["wall"],
            "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "errors": len(res["errors"]),
            "acked_edits": len(res["acked"]), "lost": verify(root, res["acked"]),
            "first_errors": res["errors"][:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--think", type=float, default=None,
                    help="seconds each simulated person waits before each request "
                         "(default: run 0, a stress test, and 0.5, a very fast person)")
    ap.add_argument("--postgres", metavar="URL", nargs="?", const="postgresql+psycopg://"
                    "postgres@127.0.0.1:5432/test", help="also run on PostgreSQL")
    args = ap.parse_args()
    thinks = [args.think] if args.think is not None else [0.0, 0.5]
    results = [run_one("sqlite", args.users, args.seconds, args.images, None, t) for t in thinks]
    if args.postgres:
        from sqlalchemy import create_engine, text

        engine = create_engine(args.postgres)
        for t in thinks:
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS lp_load CASCADE"))
                conn.execute(text("CREATE SCHEMA lp_load"))
            try:
                results.append(run_one("postgresql", args.users, args.seconds, args.images,
                                       f"{args.postgres}?options=-csearch_path%3Dlp_load", t))
            finally:
                with engine.begin() as conn:
                    conn.execute(text("DROP SCHEMA lp_load CASCADE"))
    print(f"\n{args.users} annotators, {args.seconds:.0f} s each run, one server process, "
          f"load generator on the same {os.cpu_count()} cores")
    print(f"{'database':<12}{'think s':>8}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'errors':>8}{'acked edits':>13}{'lost':>6}")
    for r in results:
        print(f"{r['db']:<12}{r['think']:>8.1f}{r['requests']:>10}{r['rps']:>8.0f}{r['p50']:>9.1f}"
              f"{r['p95']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}{r['acked_edits']:>13}"
              f"{r['lost']:>6}")
        for e in r["first_errors"]:
            print(f"  e.g. {e}")


if __name__ == "__main__":
    main()
