"""The model server under a rough load: concurrent clients sending good images, corrupt
ones, bodies over the limit, names of models that do not exist, and clients that give up
mid-request; halfway, a new version of the model is registered and swapped in.

Counts every answer by status, checks that nothing but the documented 503 is a 5xx, that
no answer mixes versions (version 2 shows nothing under its higher threshold), and
samples the server's memory (RSS) every second: it should stay flat once warm.

Usage:
    python benchmarks/serving_load.py [--seconds 60] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
NEW_THRESHOLD = 0.6
OVERSIZED = b"\xff\xd8" + bytes(33 * 1024 * 1024)  # over the server's 32 MiB body limit


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(base: str, key: str, images: list[bytes], until: float, swap_at: float,
                 out: dict[str, Any], rng: random.Random) -> None:
    import httpx

    h = {"Authorization": f"Bearer {key}", "Content-Type": "image/jpeg"}
    url = base + "/v1/models/yolox-nano/predict"
    async with httpx.AsyncClient(timeout=60) as c:
        while time.monotonic() < until:
            roll = rng.random()
            kind = ("good" if roll < 0.70 else "corrupt" if roll < 0.80 else
                    "oversized" if roll < 0.85 else "unknown" if roll < 0.90 else "gone")
            data = rng.choice(images)
            sent = time.monotonic()
            try:
                if kind == "corrupt":
                    r = await c.post(url, content=data[: len(data) // 3], headers=h)
                elif kind == "oversized":
                    r = await c.post(url, content=OVERSIZED, headers=h)
                elif kind == "unknown":
                    r = await c.post(base + "/v1/models/nope/predict", content=data, headers=h)
                elif kind == "gone":  # gives up after 5 ms: the server must not mind
                    await asyncio.wait_for(c.post(url, content=data, headers=h), 0.005)
                    continue
                else:
                    r = await c.post(url, content=data, headers=h)
            except (TimeoutError, httpx.HTTPError) as e:
                out["client_errors"][f"{kind}: {type(e).__name__}"] += 1
                continue
            out["status"][f"{kind} {r.status_code}"] += 1
            if kind == "good" and r.status_code == 200:
                body = r.json()
                v = body["version"]
                out["versions"][v] += 1
                scores = [p["score"] for p in body["predictions"]]
                if v == "2" and any(s < NEW_THRESHOLD for s in scores):
                    out["mixed"] += 1
                if v == "1" and sent > swap_at + 10:
                    out["late_v1"] += 1


async def run(base: str, key: str, images: list[bytes], clients: int, seconds: float,
              swap_at: float, out: dict[str, Any]) -> None:
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(base, key, images, until, swap_at, out, random.Random(k))
                           for k in range(clients)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=32)
    a = ap.parse_args()

    import httpx
    import psutil

    from labelpilot import users
    from labelpilot.models.catalogue import install
    from labelpilot.models.manifest import ModelManifest
    from labelpilot.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="lp-serving-load-"))
    ws = Workspace.create(tmp / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(SHARED / "models"))
    with ws.transaction() as conn:
        u = users.add_user(conn, username="load", password="load password 1", role="annotator")
        key = users.issue_token(conn, u)[0]
    ws.close()
    images = [p.read_bytes() for p in
              sorted((SHARED / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:32]]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - open for the server's life
    proc = subprocess.Popen([sys.executable, "-m", "labelpilot.cli", "serve-models",
                             str(ws.root), "--port", str(port), "--models", "yolox-nano",
                             "--watch-s", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        server = psutil.Process(proc.pid)
        out: dict[str, Any] = {"status": Counter(), "client_errors": Counter(),
                               "versions": Counter(), "mixed": 0, "late_v1": 0}
        rss: list[tuple[float, float]] = []
        start = time.monotonic()
        swap_at = start + a.seconds / 2

        async def everything() -> None:
            async def sample() -> None:
                swapped = False
                while time.monotonic() < start + a.seconds:
                    rss.append((time.monotonic() - start, server.memory_info().rss / 2**20))
                    if not swapped and time.monotonic() >= swap_at:
                        path = ws.models_dir / "yolox-nano" / "manifest.json"
                        m = ModelManifest.load(path)
                        new = replace(m, version="2", preprocessing={
                            **m.preprocessing, "score_threshold": NEW_THRESHOLD})
                        path.with_suffix(".tmp").write_bytes(new.to_json())
                        path.with_suffix(".tmp").replace(path)
                        swapped = True
                    await asyncio.sleep(1.0)

            await asyncio.gather(run(base, key, images, a.clients, a.seconds, swap_at, out),
                                 sample())

        asyncio.run(everything())
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{a.clients} clients for {a.seconds:g} s, a new version registered at "
          f"{a.seconds / 2:g} s\n")
    print("answers by request kind and status:")
    for k, n in sorted(out["status"].items()):
        print(f"  {k:>20}: {n}")
    print("client-side failures (expected: the clients that gave up):",
          dict(out["client_errors"]))
    bad = {k: n for k, n in out["status"].items()
           if int(k.split()[-1]) >= 500 and not k.endswith(" 503")}
    print(f"5xx other than 503: {sum(bad.values())} {bad or ''}")
    print(f"answers by version: {dict(out['versions'])}; answers of version 2 showing a box "
          f"under its threshold: {out['mixed']}; version 1 answers sent 10 s after the swap: "
          f"{out['late_v1']}")
    half = [m for t, m in rss if t >= a.seconds / 4]
    print(f"server RSS (MB): start {rss[0][1]:.0f}, after a quarter of the run "
          f"{half[0]:.0f}, min {min(half):.0f}, max {max(half):.0f}, end {rss[-1][1]:.0f}")
    print(f"server still running at the end: {alive}")


if __name__ == "__main__":
    main()
