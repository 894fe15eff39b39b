"""The job engine: the jobs table, a context for handlers, a runner. It knows no handler:
`run_job` and `JobRunner` take the kind -> handler table (`jobs.kinds.HANDLERS`).

A job's work is split into items with string keys. A handler marks items finished in the
same transaction as their effect (or after their effect is durable and idempotent), so a
job killed half-way resumes where it stopped: a runner re-queues a `running` job whose
owner is gone (its process no longer exists on this host, or its heartbeat is older than
the lease) and the handler skips finished items. A job whose owner is alive is never
taken over, so several servers can share one workspace. Cancellation is a flag the
handler checks between items.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from labelpilot.errors import LabelPilotError, NotFoundError
from labelpilot.store import jobs as rows
from labelpilot.store import repo
from labelpilot.store.signals import QUEUED
from labelpilot.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy import Connection

TERMINAL = ("done", "failed", "cancelled")
HEARTBEAT_S = 5.0  # how often a running job says its runner is alive
LEASE_S = 30.0  # a job whose heartbeat is older than this is taken over
T = TypeVar("T")
Handler = Callable[["JobContext"], dict[str, Any] | None]
Handlers = Mapping[str, Handler]


class Cancelled(Exception):
    """Raised inside a handler when the job's cancel flag is seen."""


@dataclass
class JobInfo:
    id: int
    kind: str
    params: dict[str, Any]
    status: str
    total: int
    done: int
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None = None
    heartbeat_at: datetime | None = None

    @property
    def rate(self) -> float | None:
        """Items per second since the job (re)started, while it runs."""
        if self.started_at is None or self.done == 0:
            return None
        end = repo.as_utc(self.finished_at) or repo.now()
        start = repo.as_utc(self.started_at)
        assert start is not None
        secs = (end - start).total_seconds()
        return self.done / secs if secs > 0 else None

    @property
    def eta_s(self) -> float | None:
        r = self.rate
        if r is None or self.status != "running" or not r:
            return None
        return max(0.0, (self.total - self.done) / r)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": self.params, "status": self.status,
                "total": self.total, "done": self.done, "error": self.error,
                "result": self.result, "cancel_requested": self.cancel_requested,
                "created_by": self.created_by, "created_at": repo.as_utc(self.created_at),
                "started_at": repo.as_utc(self.started_at), "finished_at": repo.as_utc(self.finished_at),
                "rate": self.rate, "eta_s": self.eta_s}



def _info(r: Any) -> JobInfo:
    return JobInfo(r.id, r.kind, orjson.loads(r.params), r.status, r.total, r.done, r.error,
                   orjson.loads(r.result) if r.result else None, bool(r.cancel_requested),
                   r.created_by, r.created_at, r.started_at, r.finished_at, r.owner,
                   r.heartbeat_at)


def submit(conn: Connection, *, kind: str, params: dict[str, Any], user: str | None,
           known: Iterable[str]) -> JobInfo:
    """Queue a job of `kind`, one of the `known` kinds."""
    known = sorted(known)
    if kind not in known:
        raise LabelPilotError(f"unknown job kind {kind!r}; known: {', '.join(known)}")
    job_id = rows.insert_job(conn, kind=kind, params=orjson.dumps(params).decode(), user=user)
    return get_job(conn, job_id)


def get_job(conn: Connection, job_id: int) -> JobInfo:
    r = rows.job_row(conn, job_id)
    if r is None:
        raise NotFoundError(f"no job {job_id}")
    return _info(r)


def list_jobs(conn: Connection, *, limit: int = 100) -> list[JobInfo]:
    return [_info(r) for r in rows.recent(conn, limit)]


def unfinished_job_ids(conn: Connection, *, kinds: Iterable[str] | None = None,
                       exclude: int | None = None) -> list[int]:
    """Queued or running (or interrupted: still `running`) jobs, oldest first."""
    return rows.unfinished_ids(conn, kinds=kinds, exclude=exclude)


def new_owner() -> str:
    """This runner's name in the jobs table: host, process, and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_gone(owner: str | None, heartbeat_at: datetime | None, *,
               lease_s: float = LEASE_S) -> bool:
    """True when a running job's runner is gone: its process no longer exists (on this
    host), or it has not beaten for `lease_s` (any host), or the job has no owner."""
    if owner is None or heartbeat_at is None:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # another user's process: alive
    beat = repo.as_utc(heartbeat_at)
    assert beat is not None
    return (repo.now() - beat).total_seconds() > lease_s


def take_over_abandoned(conn: Connection, *, lease_s: float = LEASE_S) -> list[int]:
    """Re-queue the running jobs whose runner is gone; returns their ids."""
    return [job_id for job_id, owner, beat in rows.running_owners(conn)
            if owner_gone(owner, beat, lease_s=lease_s) and rows.requeue(conn, job_id, owner)]


def runnable_job_ids(conn: Connection, *, lease_s: float = LEASE_S) -> list[int]:
    """Queued jobs, and running ones whose runner is gone, oldest first."""
    alive = {job_id for job_id, owner, beat in rows.running_owners(conn)
             if not owner_gone(owner, beat, lease_s=lease_s)}
    return [i for i in unfinished_job_ids(conn) if i not in alive]


def request_cancel(conn: Connection, job_id: int) -> JobInfo:
    job = get_job(conn, job_id)
    if job.status in TERMINAL:
        raise LabelPilotError(f"job {job_id} is already {job.status}")
    if job.status == "queued":
        rows.set_job(conn, job_id, status="cancelled", cancel_requested=True,
                     finished_at=repo.now())
    else:
        rows.set_job(conn, job_id, cancel_requested=True)
    return get_job(conn, job_id)


class JobContext:
    """What a handler gets: its parameters, the finished keys, and ways to report."""

    def __init__(self, ws: Workspace, job: JobInfo, *, item_delay_s: float = 0.0) -> None:
        self.ws = ws
        self.job = job
        self.params = job.params
        self.item_delay_s = item_delay_s
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        with ws.engine.connect() as conn:
            self.finished = rows.finished_keys(conn, job.id)
        self.done = len(self.finished)

    def set_items(self, keys: Iterable[str]) -> None:
        """The job's items: those still to do plus those finished before a restart (which
        may no longer be among `keys`, e.g. images pre-labeled by the first run)."""
        self.set_total(len(set(keys) | self.finished))

    def set_total(self, total: int) -> None:
        with self.ws.transaction() as conn:
            rows.set_job(conn, self.job.id, total=total, done=self.done)

    def is_finished(self, key: str) -> bool:
        return key in self.finished

    def item_done(self, key: str) -> None:
        """Record one finished item (flushed in batches; `flush` at the end)."""
        if key in self.finished:
            return
        self.finished.add(key)
        self._pending.append(key)
        self.done += 1
        if self.item_delay_s:
            time.sleep(self.item_delay_s)
        if len(self._pending) >= 50 or time.monotonic() - self._last_flush > 0.5:
            self.flush()

    def record_in(self, conn: Connection, keys: Iterable[str]) -> None:
        """Record finished items inside the transaction that commits their effect, so a
        crash never leaves the effect without the record (or the other way round)."""
        new = [k for k in dict.fromkeys(keys) if k not in self.finished]
        if not new:
            return
        rows.add_items(conn, self.job.id, new)
        self.finished.update(new)
        self.done += len(new)
        rows.set_job(conn, self.job.id, done=self.done)

    def commit_item(self, key: str, effect: Callable[[Connection], T]) -> T:
        """Run `effect` and record item `key` as finished in one transaction (a crash
        never leaves one without the other); then stop if the job was cancelled."""
        return self.commit_batch([key], effect)

    def commit_batch(self, keys: list[str], effect: Callable[[Connection], T]) -> T:
        """`commit_item` for several items whose effects one call makes (the effect and
        the records of all of them in one transaction: a crash keeps all or none): one
        commit and a few statements for many small items."""
        with self.ws.transaction() as conn:
            result = effect(conn)
            self.record_in(conn, keys)
        if self.item_delay_s:
            time.sleep(self.item_delay_s * len(keys))
        if self.cancel_requested():
            raise Cancelled()
        return result

    def report(self, done: int, total: int) -> None:
        """Progress for work that is not a list of items (a training run's seconds)."""
        self.done = done
        with self.ws.transaction() as conn:
            rows.set_job(conn, self.job.id, done=done, total=total)

    def cancel_requested(self) -> bool:
        with self.ws.engine.connect() as conn:
            return rows.cancel_requested(conn, self.job.id)

    def flush(self) -> None:
        with self.ws.transaction() as conn:
            rows.add_items(conn, self.job.id, self._pending)
            rows.set_job(conn, self.job.id, done=self.done)
            cancel = rows.cancel_requested(conn, self.job.id)
        self._pending = []
        self._last_flush = time.monotonic()
        if cancel:
            raise Cancelled()

    def check_cancel(self) -> None:
        self.flush()


class _Heartbeat:
    """Says, every `every_s` while a job runs, that its runner is alive."""

    def __init__(self, ws: Workspace, job_id: int, owner: str, every_s: float) -> None:
        self.ws, self.job_id, self.owner, self.every_s = ws, job_id, owner, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"labelpilot-heartbeat-{job_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.ws.transaction() as conn:
                    rows.heartbeat(conn, self.job_id, self.owner)
            except Exception:  # the database is away for a moment: beat again later
                continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_job(ws: Workspace, job_id: int, handlers: Handlers, *, item_delay_s: float = 0.0,
            owner: str | None = None, heartbeat_s: float = HEARTBEAT_S) -> JobInfo:
    """Run (or resume) one job to its end in this thread with its kind's handler, as
    `owner` (a new name when None), beating its heartbeat meanwhile. A job another live
    runner is running is refused."""
    owner = owner or new_owner()
    with ws.transaction() as conn:
        job = get_job(conn, job_id)
        if job.status == "running" and job.owner != owner \
                and not owner_gone(job.owner, job.heartbeat_at):
            raise LabelPilotError(f"job {job_id} is running on {job.owner}",
                                  hint="wait for it, or cancel it")
        when = repo.now()
        rows.set_job(conn, job_id, status="running", started_at=when, error=None, owner=owner,
                     heartbeat_at=when)
        job = get_job(conn, job_id)
    ctx = JobContext(ws, job, item_delay_s=item_delay_s)
    with _Heartbeat(ws, job_id, owner, heartbeat_s):
        try:
            handler = handlers.get(job.kind)
            if handler is None:
                raise LabelPilotError(f"this version cannot run jobs of kind {job.kind!r}")
            result = handler(ctx)
            ctx.flush()
            status, error = "done", None
        except Cancelled:
            status, error, result = "cancelled", None, None
        except LabelPilotError as e:
            status, error, result = "failed", str(e), None
        except Exception as e:
            status, error, result = "failed", f"{type(e).__name__}: {e}", None
            traceback.print_exc()
    with ws.transaction() as conn:
        rows.set_job(conn, job_id, status=status, error=error, finished_at=repo.now(),
                     done=ctx.done,
                     result=orjson.dumps(result).decode() if result is not None else None)
        return get_job(conn, job_id)


class JobRunner:
    """A small pool of worker threads in the server process that runs queued jobs. Idle,
    its workers wait for a job to be queued (`store.signals`: a PostgreSQL notification
    from any server, or this process's own commit on SQLite), looking for work anyway
    every `poll_s` (default: the signals' fallback, 15 s on PostgreSQL, 1 s on SQLite
    where another process's jobs are not signalled), and every `lease_s / 2` for jobs
    whose runner is gone, which they take over."""

    def __init__(self, ws: Workspace, handlers: Handlers, *, workers: int = 2,
                 poll_s: float | None = None, item_delay_s: float = 0.0, lease_s: float = LEASE_S,
                 heartbeat_s: float = HEARTBEAT_S, idle: Callable[[], object] | None = None,
                 idle_every_s: float = 5.0) -> None:
        self.ws = ws
        self.handlers = handlers
        self.workers = workers
        self.poll_s = poll_s
        self.item_delay_s = item_delay_s
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.owner = new_owner()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._next_takeover = 0.0
        self._takeover_lock = threading.Lock()
        # work the shell gives the runner for its idle moments (the closed loop's check),
        # at most every `idle_every_s`, one worker at a time
        self.idle = idle
        self.idle_every_s = idle_every_s
        self._next_idle = 0.0
        self._idle_lock = threading.Lock()

    def start(self) -> None:
        signals = self.ws.job_signals
        if self.poll_s is None:
            self.poll_s = signals.fallback_s
        self._unsubscribe = signals.subscribe(self._signalled)
        # Jobs whose runner died (this server's last run, or another server) go on where
        # they stopped; jobs another live server runs are left to it.
        self._take_over()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"labelpilot-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=5)

    def _signalled(self, job_id: int | None, event: str) -> None:
        if event == QUEUED or job_id is None:  # a job to run, or a reconnected listener
            self._wake.set()

    def _take_over(self) -> None:
        with self._takeover_lock:
            if time.monotonic() < self._next_takeover:
                return
            self._next_takeover = time.monotonic() + self.lease_s / 2
            with self.ws.transaction() as conn:
                take_over_abandoned(conn, lease_s=self.lease_s)

    def _when_idle(self) -> None:
        if self.idle is None or time.monotonic() < self._next_idle:
            return
        if not self._idle_lock.acquire(blocking=False):
            return
        try:
            self._next_idle = time.monotonic() + self.idle_every_s
            if self.idle() is not None:
                self._wake.set()  # it queued a job: run it now
        except Exception:  # the idle work never stops the runner
            traceback.print_exc()
        finally:
            self._idle_lock.release()

    def _claim(self) -> int | None:
        self._take_over()
        with self.ws.transaction() as conn:
            return rows.claim_queued(conn, self.owner)

    def _loop(self) -> None:
        poll_s = self.poll_s or 1.0
        next_look = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            job_id = None
            if self._wake.is_set() or now >= next_look:
                self._wake.clear()
                next_look = now + poll_s
                try:
                    job_id = self._claim()
                except Exception:
                    job_id = None
            if job_id is None:
                # the idle work (the closed loop's check) keeps its own rhythm, shorter
                # than the fallback look on PostgreSQL; it wakes the workers if it queues
                self._when_idle()
                wait = next_look - time.monotonic()
                if self.idle is not None:
                    wait = min(wait, self.idle_every_s)
                self._wake.wait(max(wait, 0.0))
                continue
            next_look = 0.0  # after a job, look again at once
            try:
                run_job(self.ws, job_id, self.handlers, item_delay_s=self.item_delay_s,
                        owner=self.owner, heartbeat_s=self.heartbeat_s)
            except Exception:  # the database went away mid-job: the job is taken over later
                traceback.print_exc()


def keys(values: Iterable[object]) -> list[str]:
    return [str(v) for v in values]
