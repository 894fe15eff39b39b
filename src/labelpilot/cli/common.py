"""What every command shares: the consoles, option types, user errors printed without a
traceback, progress bars, running a job here, JSON output."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelpilot.errors import LabelPilotError
from labelpilot.jobs import engine
from labelpilot.workspace import Workspace

err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class Task(StrEnum):
    ocr = "ocr"
    detect = "detect"
    segment = "segment"
    classify = "classify"


class SplitOpt(StrEnum):
    train = "train"
    val = "val"
    test = "test"


class StatusOpt(StrEnum):
    accepted = "accepted"
    all = "all"


class RoleOpt(StrEnum):
    annotator = "annotator"
    reviewer = "reviewer"
    admin = "admin"


class ImagesOpt(StrEnum):
    new = "new"
    all = "all"


class InitOpt(StrEnum):
    pretrained = "pretrained"
    scratch = "scratch"


def fail(e: LabelPilotError) -> NoReturn:
    err.print(f"[bold red]error:[/] {e.message}", highlight=False, markup=True, soft_wrap=True)
    if e.hint:
        err.print(f"[yellow]hint:[/] {e.hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except LabelPilotError as e:
        fail(e)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def run_job(ws: Workspace, job_id: int, label: str, *, show: bool) -> engine.JobInfo:
    """Run (or resume) a job here, in a worker thread, with a progress bar from its row."""
    from labelpilot.jobs.kinds import HANDLERS  # loads every handler's modules: only here

    with progress_bar(show) as progress, ThreadPoolExecutor(1) as pool:
        future = pool.submit(engine.run_job, ws, job_id, HANDLERS)
        while not future.done():
            time.sleep(0.3)
            if progress:
                with ws.engine.connect() as conn:
                    j = engine.get_job(conn, job_id)
                progress(label, j.done, max(j.total, 1))
        return future.result()


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def open_workspace(directory: Path) -> Workspace:
    return Workspace.open(directory)


def class_map(items: list[str] | None) -> dict[str, str] | None:
    """--map MODEL_CLASS=PROJECT_LABEL options as a dict (an empty label drops the class)."""
    pairs = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip():
            raise LabelPilotError(f"--map {item!r} is not MODEL_CLASS=PROJECT_LABEL",
                                  hint="e.g. --map 'dining table=table' (or 'person=' to "
                                       "drop that class)")
        pairs[src.strip()] = dst.strip()
    return pairs or None


MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", help="Detectors: model class = project label (repeat it), e.g. "
                  "--map 'dining table=table'; 'person=' drops a class.")]
