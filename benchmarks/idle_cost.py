"""What an idle server costs: database transactions and CPU of one `labelpilot serve` on
PostgreSQL with nothing to do, then with N browsers following a job that does not move
(Server-Sent Events).

Runners and streams wait for job signals (PostgreSQL LISTEN/NOTIFY) instead of polling;
`--poll` runs the same server with the signals' fallback look forced to the old polling
period (0.5 s streams, 1 s runner workers), the reference, in the same run.

Usage:
    python benchmarks/idle_cost.py [--streams 50] [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from load_annotators import OUT, PASSWORD, build, free_port, start_server

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commits(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        # the statistics reach pg_stat_database up to a second after a transaction ends
        return int(conn.execute(text(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()")).scalar_one())


def _stalled_job(root: Path) -> int:
    """A running job owned by this (live) process, its heartbeat a day ahead so that its
    lease does not run out during the run: followed, it never moves."""
    from labelpilot.jobs import engine
    from labelpilot.store import jobs as rows
    from labelpilot.store.repo import now
    from labelpilot.workspace import Workspace

    with Workspace.open(root) as ws, ws.transaction() as conn:
        job_id = engine.submit(conn, kind="export", params={}, user=None, known=["export"]).id
        rows.set_job(conn, job_id, status="running", heartbeat_at=now() + timedelta(days=1),
                     owner=f"{socket.gethostname()}:{os.getpid()}:bench")
    return job_id


async def _follow(base: str, job_id: int, streams: int, seconds: float,
                  measure: Any) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=streams + 5)
    async with httpx.AsyncClient(base_url=base, timeout=seconds + 30, limits=limits) as client:
        r = await client.post("/api/auth/token", data={"username": "user0", "password": PASSWORD})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}

        opened: list[int] = []

        async def one() -> None:
            async with client.stream("GET", f"/api/jobs/{job_id}/events", headers=h) as s:
                s.raise_for_status()
                async for line in s.aiter_lines():
                    if line.startswith("data: "):
                        opened.append(1)

        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        for _ in range(300):  # every stream open and read once
            await asyncio.sleep(0.1)
            if len(opened) >= streams:
                break
        assert len(opened) == streams, f"{len(opened)} of {streams} streams opened"
        out = await asyncio.to_thread(measure)
        assert not any(t.done() for t in tasks), "a stream ended"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def run(label: str, db_url: str, streams: int, seconds: float, poll: bool) -> dict[str, Any]:
    from sqlalchemy import create_engine

    root = OUT / f"idle-{label}"
    build(root, 20, 1, db_url)
    job_id = _stalled_job(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if poll:
        env["LABELPILOT_IDLE_POLL"] = "1"

    stats = create_engine(db_url)

    def floor() -> float:
        """Transactions/s with no server (this script's own, autovacuum's)."""
        c0 = _commits(stats)
        time.sleep(seconds + 1.0)
        return (_commits(stats) - c0) / seconds

    without = floor()
    with open(root / "server.log", "wb") as log:
        server = start_server(root, port, log, env)
        time.sleep(5.0)  # start-up's own work (migration check, blob collection) done

        def measure() -> dict[str, float]:
            c0, t0 = _commits(stats), _cpu_s(server.pid)
            time.sleep(seconds)
            time.sleep(1.0)  # the statistics' delay, the same at both ends
            return {"tx_per_s": (_commits(stats) - c0) / seconds,
                    "cpu_pct": 100 * (_cpu_s(server.pid) - t0) / (seconds + 1.0)}

        try:
            idle = measure()
            followed = asyncio.run(_follow(base, job_id, streams, seconds, measure))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    stats.dispose()
    return {"server": label, "floor_tx": without, "idle_tx": idle["tx_per_s"], "idle_cpu": idle["cpu_pct"],
            "sse_tx": followed["tx_per_s"], "sse_cpu": followed["cpu_pct"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--postgres", metavar="URL", default=POSTGRES)
    args = ap.parse_args()
    from sqlalchemy import create_engine, text

    admin = create_engine(args.postgres)
    results = []
    for label, poll in (("signals", False), ("polling", True)):
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS lp_idle CASCADE"))
            conn.execute(text("CREATE SCHEMA lp_idle"))
        try:
            results.append(run(label, f"{args.postgres}?options=-csearch_path%3Dlp_idle",
                               args.streams, args.seconds, poll))
        finally:
            with admin.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS lp_idle CASCADE"))
    admin.dispose()
    print(f"\nPostgreSQL, one server, {args.seconds:.0f} s windows, {args.streams} event "
          "streams on a job that does not move\n")
    print("| server | no server: transactions/s | idle: transactions/s | idle: CPU % | "
          "streams: transactions/s | streams: CPU % |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['server']} | {r['floor_tx']:.1f} | {r['idle_tx']:.1f} | "
              f"{r['idle_cpu']:.1f} | {r['sse_tx']:.1f} | {r['sse_cpu']:.1f} |")


if __name__ == "__main__":
    main()
