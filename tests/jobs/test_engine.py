"""The job engine with several runners on one workspace (SQLite and PostgreSQL): a job a
live runner runs is never taken over; one whose runner is gone is, and resumes."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.jobs import engine
from labelpilot.store import jobs as rows
from labelpilot.store.repo import now


def _slow(calls: list[int], items: int = 6, delay: float = 0.15):  # type: ignore[no-untyped-def]
    def handler(ctx: engine.JobContext) -> dict[str, Any]:
        calls.append(ctx.job.id)
        ctx.set_total(items)
        for k in range(items):
            if not ctx.is_finished(str(k)):
                time.sleep(delay)
                ctx.item_done(str(k))
        return {"items": items}
    return handler


def _submit(ws) -> int:  # type: ignore[no-untyped-def]
    with ws.transaction() as conn:
        return engine.submit(conn, kind="slow", params={}, user=None, known=["slow"]).id


def _wait(ws, job_id: int, status: str, timeout: float = 30) -> engine.JobInfo:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        with ws.engine.connect() as conn:
            job = engine.get_job(conn, job_id)
        if job.status == status:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_second_runner_leaves_a_live_runners_job_alone(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    calls: list[int] = []
    handlers = {"slow": _slow(calls)}
    a = engine.JobRunner(ws, handlers, workers=1, poll_s=0.05, heartbeat_s=0.2)
    a.start()
    job_id = _submit(ws)
    running = _wait(ws, job_id, "running")
    b = engine.JobRunner(ws, handlers, workers=1, poll_s=0.05, heartbeat_s=0.2)
    b.start()  # the second server starts while the first runs the job
    try:
        seen = set()
        deadline = time.monotonic() + 30
        while True:
            with ws.engine.connect() as conn:
                job = engine.get_job(conn, job_id)
            if job.status == "done":
                break
            seen.add(job.status)
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert seen <= {"running"} and calls == [job_id]  # never re-queued, never failed
        assert running.owner == a.owner == job.owner
        assert job.heartbeat_at is not None and running.heartbeat_at is not None
        assert job.heartbeat_at > running.heartbeat_at
    finally:
        a.stop()
        b.stop()
    # and a runner asked to run it by hand while it is someone else's is refused
    job_id = _submit(ws)
    with ws.transaction() as conn:
        rows.set_job(conn, job_id, status="running", owner="elsewhere:1:x", heartbeat_at=now())
    with pytest.raises(LabelPilotError, match="is running on elsewhere:1:x"):
        engine.run_job(ws, job_id, handlers)


def test_a_job_whose_runner_died_is_taken_over_and_resumes(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    calls: list[int] = []
    handlers = {"slow": _slow(calls, items=4, delay=0.01)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = _submit(ws)
    with ws.transaction() as conn:  # what a runner killed after two items leaves
        rows.set_job(conn, job_id, status="running", total=4, done=2, heartbeat_at=now(),
                     owner=f"{socket.gethostname()}:{dead.pid}:x")
        rows.add_items(conn, job_id, ["0", "1"])
    r = engine.JobRunner(ws, handlers, workers=1, poll_s=0.05)
    r.start()
    try:
        job = _wait(ws, job_id, "done")
    finally:
        r.stop()
    assert job.done == 4 and job.owner == r.owner and calls == [job_id]


def test_a_silent_runner_elsewhere_is_taken_over_after_its_lease(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    calls: list[int] = []
    job_id = _submit(ws)
    with ws.transaction() as conn:  # another host's runner that beat a moment ago
        rows.set_job(conn, job_id, status="running", owner="other-host:4242:x",
                     heartbeat_at=now())
    r = engine.JobRunner(ws, {"slow": _slow(calls, items=2, delay=0.01)}, workers=1,
                         poll_s=0.05, lease_s=1.5)
    r.start()
    try:
        time.sleep(0.5)
        with ws.engine.connect() as conn:
            assert engine.get_job(conn, job_id).status == "running" and calls == []
        _wait(ws, job_id, "done")  # once its lease ran out
    finally:
        r.stop()
    assert calls == [job_id]


def test_heartbeats_go_on_while_a_job_runs(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    beats: list[Any] = []
    job_id = _submit(ws)

    def handler(ctx: engine.JobContext) -> None:
        for _ in range(4):
            time.sleep(0.3)
            with ws.engine.connect() as conn:
                beats.append(engine.get_job(conn, job_id).heartbeat_at)

    t = threading.Thread(target=engine.run_job, args=(ws, job_id, {"slow": handler}),
                         kwargs={"heartbeat_s": 0.1})
    t.start()
    t.join(timeout=30)
    assert len(set(beats)) >= 3


def checkouts(ws) -> list[int]:  # type: ignore[no-untyped-def]
    """A list that grows by one each time `ws` takes a database connection from its pool."""
    from sqlalchemy import event

    seen: list[int] = []
    event.listen(ws.engine, "checkout", lambda *_: seen.append(1))
    return seen


def settled(seen: list[int], quiet_s: float = 1.0, timeout: float = 20) -> None:
    """Wait until `seen` (see `checkouts`) has not grown for `quiet_s`."""
    deadline = time.monotonic() + timeout
    count, since = len(seen), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "connections kept being taken"
        time.sleep(0.05)
        if len(seen) != count:
            count, since = len(seen), time.monotonic()


def listening(ws) -> int | None:  # type: ignore[no-untyped-def]
    """PostgreSQL: wait for the workspace's listener to be up; its server process."""
    deadline = time.monotonic() + 20
    while ws.job_signals.listener_pid is None:
        assert time.monotonic() < deadline, "the job signals' listener never connected"
        time.sleep(0.05)
    return ws.job_signals.listener_pid


def test_a_queued_job_wakes_an_idle_runner_without_polling(make_workspace) -> None:  # type: ignore[no-untyped-def]
    """The runner looks for work only every 300 s here: the jobs start because they are
    signalled, by this process's commit, and on PostgreSQL by another server's (NOTIFY),
    also after the listener's connection was cut."""
    from sqlalchemy import text

    from labelpilot.workspace import Workspace

    ws = make_workspace()
    calls: list[int] = []
    r = engine.JobRunner(ws, {"slow": _slow(calls, items=1, delay=0)}, workers=2, poll_s=300)
    r.start()
    try:
        time.sleep(0.3)  # both workers idle, waiting
        _wait(ws, _submit(ws), "done", timeout=20)
        if ws.engine.dialect.name != "postgresql":
            return
        other = Workspace.open(ws.root)  # another server: its own engine and connections
        try:
            pid = listening(ws)
            _wait(ws, _submit(other), "done", timeout=20)
            with other.engine.begin() as conn:  # the database drops the listener
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 20
            while ws.job_signals.listener_pid in (None, pid):
                assert time.monotonic() < deadline, "the listener did not reconnect"
                time.sleep(0.05)
            _wait(ws, _submit(other), "done", timeout=20)
        finally:
            other.close()
    finally:
        r.stop()
    assert len(calls) == (3 if ws.engine.dialect.name == "postgresql" else 1)


def test_an_idle_runner_on_postgresql_does_not_poll_the_database(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace()
    r = engine.JobRunner(ws, {}, workers=2)
    seen = checkouts(ws)
    r.start()
    try:
        assert r.poll_s == ws.job_signals.fallback_s
        if ws.engine.dialect.name != "postgresql":
            return  # SQLite: a 1 s look, for jobs another process queued (not signalled)
        listening(ws)
        settled(seen)  # each worker's first look done (late on a busy machine)
        before = len(seen)
        time.sleep(2.0)  # the runner polled twice a second (2 workers) before signals
        assert len(seen) == before
    finally:
        r.stop()


def test_signals_reach_only_their_own_workspace(make_workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two workspaces in two schemas of one PostgreSQL database: the jobs of one do not
    wake the other (the channel is the schema's)."""
    import uuid

    from sqlalchemy import create_engine, text

    from labelpilot.store.signals import QUEUED
    from labelpilot.workspace import Workspace
    from tests.conftest import POSTGRES_URL

    ws = make_workspace()
    if ws.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's signals never leave their process")
    schema = f"lp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    other = Workspace.create(tmp_path / "other", task="detect",
                             database_url=f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    heard: list[tuple[int | None, str]] = []
    unsubscribe = ws.job_signals.subscribe(lambda job_id, event: heard.append((job_id, event)))
    try:
        listening(ws)
        for _ in range(3):  # jobs 1, 2 and 3 over there
            _submit(other)
        own = _submit(ws)  # job 1 here
        deadline = time.monotonic() + 20
        while (own, QUEUED) not in heard:
            assert time.monotonic() < deadline, heard
            time.sleep(0.05)
        assert {job_id for job_id, _ in heard} <= {own, None}, heard
    finally:
        unsubscribe()
        other.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
