"""Queries on the jobs and job_items tables (the engine that runs them is `labelpilot.jobs`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from labelpilot.store.repo import now
from labelpilot.store.signals import CHANGED, QUEUED, job_changed
from labelpilot.store.tables import Job, JobItem, table

jobs_t = table(Job)
items_t = table(JobItem)


def insert_job(conn: Connection, *, kind: str, params: str, user: str | None) -> int:
    """A queued job with its parameters (JSON); returns its id."""
    job_id = int(conn.execute(insert(jobs_t).values(
        kind=kind, params=params, status="queued", total=0, done=0, cancel_requested=False,
        created_by=user, created_at=now()).returning(jobs_t.c.id)).scalar_one())
    job_changed(conn, job_id, QUEUED)
    return job_id


def job_row(conn: Connection, job_id: int) -> Any | None:
    return conn.execute(select(jobs_t).where(jobs_t.c.id == job_id)).first()


def recent(conn: Connection, limit: int) -> list[Any]:
    return list(conn.execute(select(jobs_t).order_by(jobs_t.c.id.desc()).limit(limit)))


def unfinished_ids(conn: Connection, *, kinds: Iterable[str] | None = None,
                   exclude: int | None = None) -> list[int]:
    q = select(jobs_t.c.id).where(jobs_t.c.status.in_(["queued", "running"]))
    if kinds is not None:
        q = q.where(jobs_t.c.kind.in_(list(kinds)))
    if exclude is not None:
        q = q.where(jobs_t.c.id != exclude)
    return list(conn.execute(q.order_by(jobs_t.c.id)).scalars())


def set_job(conn: Connection, job_id: int, **values: Any) -> None:
    conn.execute(update(jobs_t).where(jobs_t.c.id == job_id).values(**values))
    job_changed(conn, job_id, QUEUED if values.get("status") == "queued" else CHANGED)


def cancel_requested(conn: Connection, job_id: int) -> bool:
    return bool(conn.execute(select(jobs_t.c.cancel_requested).where(
        jobs_t.c.id == job_id)).scalar_one())


def finished_keys(conn: Connection, job_id: int) -> set[str]:
    return set(conn.execute(select(items_t.c.key).where(items_t.c.job_id == job_id)).scalars())


def add_items(conn: Connection, job_id: int, keys: list[str]) -> None:
    if keys:
        conn.execute(insert(items_t), [{"job_id": job_id, "key": k} for k in keys])


def running_owners(conn: Connection) -> list[tuple[int, str | None, datetime | None]]:
    """(id, owner, heartbeat_at) of every running job."""
    return [(int(i), o, hb) for i, o, hb in conn.execute(
        select(jobs_t.c.id, jobs_t.c.owner, jobs_t.c.heartbeat_at)
        .where(jobs_t.c.status == "running"))]


def requeue(conn: Connection, job_id: int, owner: str | None) -> bool:
    """Put a running job back in the queue if `owner` still holds it (no one else took it
    over meanwhile)."""
    same = jobs_t.c.owner.is_(None) if owner is None else jobs_t.c.owner == owner
    if not conn.execute(update(jobs_t).where(
            jobs_t.c.id == job_id, jobs_t.c.status == "running", same)
            .values(status="queued", owner=None)).rowcount:
        return False
    job_changed(conn, job_id, QUEUED)
    return True


def heartbeat(conn: Connection, job_id: int, owner: str) -> None:
    conn.execute(update(jobs_t).where(jobs_t.c.id == job_id, jobs_t.c.owner == owner)
                 .values(heartbeat_at=now()))


def claim_queued(conn: Connection, owner: str) -> int | None:
    """Mark the oldest queued job running, owned by `owner`, and return its id; None when
    there is none or another worker took it first."""
    job_id = conn.execute(select(jobs_t.c.id).where(jobs_t.c.status == "queued")
                          .order_by(jobs_t.c.id).limit(1)).scalar()
    if job_id is None:
        return None
    when = now()
    got = conn.execute(update(jobs_t).where(jobs_t.c.id == job_id, jobs_t.c.status == "queued")
                       .values(status="running", started_at=when, owner=owner,
                               heartbeat_at=when)).rowcount
    if not got:
        return None
    job_changed(conn, int(job_id), CHANGED)
    return int(job_id)
