"""Job signals: "job N changed" and "job N was queued", told to whoever waits on them (the
job runner's idle workers, the SSE streams that follow a job) instead of their polling the
database.

A change is signalled with the transaction that makes it, and only once it commits:

- on PostgreSQL with `pg_notify` (delivered on commit to every server listening on the
  channel, this one included): a listener thread per engine holds one connection in
  `LISTEN` and hands what arrives to this process's subscribers;
- on SQLite, which has no notifications, to this process's subscribers after the commit
  (`store.db.write_transaction` publishes what the transaction noted). Another process on
  the same SQLite file is not told: its waiters keep a short fallback poll (`fallback_s`).

A subscriber is a callable `(job_id, event)`; it runs on the publishing or listening thread
and must only hand the signal on (set an event, call_soon_threadsafe). `job_id` is None for
"anything may have changed" (the listener reconnected after a lost connection).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

CHANNEL = "labelpilot_jobs"
# PostgreSQL: the channel of the workspace whose tables the connection's search path
# finds first (workspaces in other schemas of the same database are not told)
CHANNEL_SQL = f"'{CHANNEL}_' || left(md5(current_schema()), 16)"
QUEUED = "queued"
CHANGED = "changed"
# conn.info key: the signals a SQLite write transaction noted, published after its commit
PENDING = "labelpilot_job_signals"

Subscriber = Callable[[int | None, str], None]


def job_changed(conn: Connection, job_id: int, event: str = CHANGED) -> None:
    """Signal, when `conn`'s transaction commits, that job `job_id` changed (`CHANGED`) or
    is waiting to run (`QUEUED`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_notify({CHANNEL_SQL}, :payload)"),
                     {"payload": f"{job_id} {event}"})
        return
    pending = conn.info.get(PENDING)
    if pending is not None:  # else not a write transaction of ours: the fallback poll sees it
        pending.append((job_id, event))


class JobSignals:
    """The subscribers of one engine's job signals (one per engine: `signals_of`)."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url
        # PostgreSQL signals reach every server on the database; SQLite's only this process
        self.cross_process = engine.dialect.name == "postgresql"
        self._subscribers: dict[int, Subscriber] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._listener: _Listener | None = None

    @property
    def fallback_s(self) -> float:
        """How long a waiter may wait without a signal before looking for itself: signals
        can be missed only where they do not cross processes (SQLite), or while the
        listener reconnects (it then signals None)."""
        return 15.0 if self.cross_process else 1.0

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn` on every signal until the returned function is called."""
        with self._lock:
            key = self._next
            self._next += 1
            self._subscribers[key] = fn
            if self.cross_process and self._listener is None:
                self._listener = _Listener(self)
        return lambda: self._unsubscribe(key)

    def _unsubscribe(self, key: int) -> None:
        with self._lock:
            self._subscribers.pop(key, None)

    def publish(self, signals: list[tuple[int | None, str]]) -> None:
        with self._lock:
            subscribers = list(self._subscribers.values())
        for job_id, event in signals:
            for fn in subscribers:
                fn(job_id, event)

    @property
    def listener_pid(self) -> int | None:
        """PostgreSQL: the server process of the listener's connection while it is up."""
        listener = self._listener
        return listener.backend_pid if listener is not None and listener.ready.is_set() else None

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


class _Listener:
    """A thread holding one PostgreSQL connection in LISTEN; reconnects when it drops."""

    def __init__(self, signals: JobSignals) -> None:
        self.signals = signals
        self.ready = threading.Event()
        self.backend_pid: int | None = None  # the listening connection's server process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="labelpilot-job-signals")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        import psycopg

        dsn = self.signals.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5,
                                     application_name="labelpilot-job-signals") as conn:
                    channel = conn.execute(f"SELECT {CHANNEL_SQL}").fetchone()[0]  # type: ignore[index]
                    conn.execute(f'LISTEN "{channel}"')
                    self.backend_pid = conn.info.backend_pid
                    self.ready.set()
                    delay = 0.5
                    # what changed while no one listened is unknown: everyone looks again
                    self.signals.publish([(None, CHANGED)])
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            self.signals.publish([_parse(n.payload)])
            except psycopg.Error:
                self.ready.clear()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)


def _parse(payload: str) -> tuple[int | None, str]:
    job_id, _, event = payload.partition(" ")
    return (int(job_id) if job_id.isdigit() else None), event or CHANGED


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, JobSignals] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def signals_of(engine: Engine) -> JobSignals:
    """The job signals of `engine` (made on first use)."""
    with _BY_ENGINE_LOCK:
        s = _BY_ENGINE.get(engine)
        if s is None:
            s = _BY_ENGINE[engine] = JobSignals(engine)
        return s


def close_signals(engine: Engine) -> None:
    """Stop `engine`'s listener (the engine is being disposed)."""
    with _BY_ENGINE_LOCK:
        s = _BY_ENGINE.pop(engine, None)
    if s is not None:
        s.close()


def note_pending(conn: Connection) -> list[tuple[int | None, str]]:
    """Start noting the signals of `conn`'s new write transaction (SQLite)."""
    pending: list[tuple[int | None, str]] = []
    conn.info[PENDING] = pending
    return pending


def forget_pending(conn: Connection) -> None:
    conn.info.pop(PENDING, None)
