"""A workspace: one project in one directory.

Layout::

    DIR/
      labelpilot.toml   name, task, label classes, database URL (optional), limits
      labelpilot.db     the SQLite database (unless the URL points elsewhere)
      blobs/ab/<sha256><suffix>   images, content-addressed
      models/           model cache

`LABELPILOT_DATABASE_URL` overrides the database URL of the toml (for PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from labelpilot.annotations import TASKS
from labelpilot.errors import WorkspaceError
from labelpilot.imageio import DEFAULT_MAX_PIXELS
from labelpilot.settings import Settings
from labelpilot.store.blobs import BlobStore

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine

    from labelpilot.store.signals import JobSignals

CONFIG_NAME = "labelpilot.toml"
# how an OCR project's pre-labeling finds text lines (see WorkspaceConfig.text_lines)
TEXT_LINES = ("detect", "whole-image")
DB_NAME = "labelpilot.db"


@dataclass
class LoopConfig:
    """The closed loop (active learning): after every `every` newly accepted labels in the
    train split, fine-tune the pre-labeler for `minutes` and promote the result if it beats
    it on the test split."""
    enabled: bool = False
    every: int = 50
    minutes: float = 5.0

    def to_toml(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "every": self.every, "minutes": self.minutes}

    @classmethod
    def from_toml(cls, d: Any, bad: Any) -> LoopConfig:
        if not isinstance(d, dict):
            raise bad("loop", "must be a table (enabled, every, minutes)")
        out = cls()
        if not isinstance(d.get("enabled", False), bool):
            raise bad("loop.enabled", "must be true or false")
        every, minutes = d.get("every", out.every), d.get("minutes", out.minutes)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise bad("loop.every", "must be a whole number of labels, 1 or more")
        if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
            raise bad("loop.minutes", "must be a number of minutes above 0")
        return cls(bool(d.get("enabled", False)), every, float(minutes))


@dataclass
class WorkspaceConfig:
    name: str
    task: str
    labels: list[str] = field(default_factory=list)
    database_url: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    # the model autolabel and the smart tools use unless told otherwise (the closed loop
    # promotes its better models here); None: the task's default
    prelabeler: str | None = None
    loop: LoopConfig = field(default_factory=LoopConfig)
    # OCR projects: how pre-labeling finds text lines: `detect` (the text detector), or
    # `whole-image` (each image is one cropped line, as recognition data sets are)
    text_lines: str = "detect"

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "task": self.task, "labels": list(self.labels),
                             "max_pixels": self.max_pixels}
        if self.database_url:
            d["database_url"] = self.database_url
        if self.prelabeler:
            d["prelabeler"] = self.prelabeler
        if self.loop != LoopConfig():
            d["loop"] = self.loop.to_toml()
        if self.text_lines != "detect":
            d["text_lines"] = self.text_lines
        return d

    @classmethod
    def from_toml(cls, d: dict[str, Any], path: Path) -> WorkspaceConfig:
        def bad(key: str, why: str) -> WorkspaceError:
            return WorkspaceError(f"{path}: field {key!r} {why}", hint="fix the file by hand")

        for key in ("name", "task"):
            if not isinstance(d.get(key), str):
                raise bad(key, "must be a string")
        if d["task"] not in TASKS:
            raise bad("task", f"must be one of {', '.join(TASKS)}, not {d['task']!r}")
        labels = d.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise bad("labels", "must be a list of strings")
        url = d.get("database_url")
        if url is not None and not isinstance(url, str):
            raise bad("database_url", "must be a string")
        max_pixels = d.get("max_pixels", DEFAULT_MAX_PIXELS)
        if not isinstance(max_pixels, int) or max_pixels <= 0:
            raise bad("max_pixels", "must be a positive integer")
        prelabeler = d.get("prelabeler")
        if prelabeler is not None and (not isinstance(prelabeler, str) or not prelabeler):
            raise bad("prelabeler", "must be a model's name")
        loop = LoopConfig.from_toml(d.get("loop", {}), bad)
        text_lines = d.get("text_lines", "detect")
        if text_lines not in TEXT_LINES:
            raise bad("text_lines", f"must be one of {', '.join(TEXT_LINES)}")
        return cls(d["name"], d["task"], labels, url, max_pixels, prelabeler, loop, text_lines)


class Workspace:
    """An opened workspace. Create with `Workspace.create`, open with `Workspace.open`."""

    def __init__(self, root: Path, config: WorkspaceConfig) -> None:
        self.root = root
        self.config = config
        self.blobs = BlobStore(root / "blobs")
        self._engine: Engine | None = None
        self._write_lock = threading.RLock()
        self._engine_lock = threading.Lock()

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def prelabeler(self) -> str | None:
        """The model autolabel and the smart tools use by default: the one configured (or
        promoted by the closed loop), else the built-in OCR model for OCR workspaces."""
        return self.config.prelabeler or ("ocr" if self.config.task == "ocr" else None)

    @property
    def database_url(self) -> str:
        return (Settings().database_url or self.config.database_url
                or f"sqlite:///{(self.root / DB_NAME).as_posix()}")

    @property
    def engine(self) -> Engine:
        """The database engine; the schema is migrated to the latest version on first use."""
        if self._engine is None:
            from labelpilot.store.db import make_engine, migrate

            with self._engine_lock:  # the first requests of a server arrive together:
                if self._engine is None:  # one migration (Alembic's context is global)
                    engine = make_engine(self.database_url)
                    migrate(engine)
                    self._engine = engine
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed on exit.

        On SQLite the writers of this process queue on a lock first: SQLite's own waiting
        sleeps in steps of up to 100 ms (the tail latency of a busy server), and a
        transaction that read before another writer committed could not write at all.
        """
        from labelpilot.store.db import write_transaction

        engine = self.engine
        lock = self._write_lock if engine.dialect.name == "sqlite" else nullcontext()
        with lock, write_transaction(engine) as conn:
            yield conn

    @property
    def job_signals(self) -> JobSignals:
        """Who waits on jobs (the runner, SSE streams) is told here when one changes."""
        from labelpilot.store.signals import signals_of

        return signals_of(self.engine)

    def close(self) -> None:
        if self._engine is not None:
            from labelpilot.store.signals import close_signals

            close_signals(self._engine)
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def create(cls, root: Path | str, *, name: str | None = None, task: str,
               labels: list[str] | None = None, database_url: str | None = None,
               text_lines: str = "detect") -> Workspace:
        root = Path(root)
        if task not in TASKS:
            raise WorkspaceError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
        if text_lines not in TEXT_LINES:
            raise WorkspaceError(f"text_lines must be one of {', '.join(TEXT_LINES)}, not "
                                 f"{text_lines!r}")
        if text_lines != "detect" and task != "ocr":
            raise WorkspaceError(f"text_lines is for OCR workspaces; this one is {task}")
        if (root / CONFIG_NAME).exists():
            raise WorkspaceError(f"{root} is already a workspace",
                                 hint="open it instead, or choose another directory")
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root} exists and is not empty",
                                 hint="choose an empty or new directory")
        labels = _unique(labels or [])
        config = WorkspaceConfig(name or root.name, task, labels, database_url,
                                 text_lines=text_lines)
        created = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        ws = cls(root, config)
        try:
            (root / "blobs").mkdir(exist_ok=True)
            (root / "models").mkdir(exist_ok=True)
            from labelpilot.store import repo

            with ws.engine.begin() as conn:
                repo.ensure_labels(conn, labels)
            ws.save_config()  # last: a folder without it is no workspace
        except BaseException:
            ws.close()
            # Leave nothing half-made behind (the folder was new or empty).
            for child in ("blobs", "models", DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                p = root / child
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            if created:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return ws

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        root = Path(root)
        path = root / CONFIG_NAME
        if not path.is_file():
            raise WorkspaceError(f"{root} is not a LabelPilot workspace (no {CONFIG_NAME})",
                                 hint=f"create one with: labelpilot init {root} --task ocr")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise WorkspaceError(f"{path}: not valid TOML ({e})") from None
        return cls(root, WorkspaceConfig.from_toml(data, path))

    def save_config(self) -> None:
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(self.config.to_toml()), encoding="utf-8")
        os.replace(tmp, self.config_path)

    def add_labels(self, names: list[str]) -> None:
        """Record label classes in the toml too, so it lists every class in use."""
        new = [n for n in _unique(names) if n not in self.config.labels]
        if new:
            self.config.labels.extend(new)
            self.save_config()


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))
