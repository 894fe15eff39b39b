"""What every command shares: the consoles, option types, user errors printed without a
traceback, progress bars, running a job here, JSON output."""

from __future__ import annotations

import errno
import json
import os
import sys
import tarfile
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelpilot.errors import LabelPilotError
from labelpilot.jobs import engine

if TYPE_CHECKING:
    from labelpilot.executors import ExecutorSpec
from labelpilot.workspace import Workspace

err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class Task(StrEnum):
    ocr = "ocr"
    detect = "detect"
    segment = "segment"
    classify = "classify"


class ExecutorKind(StrEnum):
    local = "local"
    ray = "ray"


ExecutorOpt = Annotated[ExecutorKind, typer.Option(
    "--executor", help="Where the models run: local (this process) or ray (a Ray cluster: "
                       "pip install 'labelpilot[ray]').")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="With --executor ray: auto (the cluster `ray start` made here), "
                          "HOST:PORT or ray://HOST:10001 [default: RAY_ADDRESS, else a "
                          "cluster started for this command].")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="With --executor ray: model workers, one CPU each [default: one per "
                      "CPU of the cluster].")]
GpusOpt = Annotated[float, typer.Option(
    "--gpus-per-worker", help="With --executor ray: GPUs each worker takes.")]
BlobsOpt = Annotated[str | None, typer.Option(
    "--blobs", help="With --executor ray: where the workers read images: s3://BUCKET/PREFIX "
                    "(an S3-compatible store this command fills with the images it sends; "
                    "pip install 'labelpilot[s3]') or the blob folder's path as they mount "
                    "it [default: the workspace's blob folder, on a shared file system].")]
S3EndpointOpt = Annotated[str | None, typer.Option(
    "--s3-endpoint", help="With --blobs s3://...: the store's URL when it is not AWS (MinIO, "
                          "Ceph) [default: AWS_ENDPOINT_URL on each machine].")]


def executor_spec(kind: ExecutorKind, address: str | None, workers: int | None,
                  gpus: float, blobs: str | None = None,
                  s3_endpoint: str | None = None) -> ExecutorSpec:
    """The ExecutorSpec the executor options name (a user error when they disagree)."""
    from labelpilot.executors import ExecutorSpec

    return ExecutorSpec(kind.value, address, workers, gpus, blobs, s3_endpoint)


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


def fail(e: LabelPilotError, code: int = 2) -> NoReturn:
    # user data (file names, labels) and hints ("[postgres]") are text, never Rich markup
    err.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False, soft_wrap=True)
    if e.hint:
        err.print(f"[yellow]hint:[/] {escape(e.hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Errors as a message and a hint, never a traceback (LABELPILOT_DEBUG=1 shows it for
    errors that are not the user's)."""
    try:
        yield
    except LabelPilotError as e:
        fail(e)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            fail(LabelPilotError("the disk is full; nothing more was written",
                                 hint="free some space and run the command again"), 1)
        fail(_unexpected(e), 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError) as e:
        fail(LabelPilotError(f"a damaged archive or compressed file: {e}",
                             hint="check the file (download it again?)"), 2)
    except Exception as e:
        fail(_unexpected(e), 1)


def _unexpected(e: BaseException) -> LabelPilotError:
    if os.environ.get("LABELPILOT_DEBUG"):
        traceback.print_exception(e)
    return LabelPilotError(f"unexpected {type(e).__name__}: {e}",
                           hint="this is a bug in LabelPilot; LABELPILOT_DEBUG=1 prints the "
                                "traceback for a report")


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
    from labelpilot.settings import Settings

    delay = Settings().job_item_delay
    with progress_bar(show) as progress, ThreadPoolExecutor(1) as pool:
        future = pool.submit(engine.run_job, ws, job_id, HANDLERS, item_delay_s=delay)
        while not future.done():
            time.sleep(0.3)
            if progress:
                with ws.engine.connect() as conn:
                    j = engine.get_job(conn, job_id)
                progress(label, j.done, max(j.total, 1))
        return future.result()


def finish_job(job: engine.JobInfo, what: str, *, as_json: bool,
               show: Callable[[engine.JobInfo], None], omit: tuple[str, ...] = ()) -> None:
    """Say how a job run here ended: its result with its id, status and error as JSON
    (without the `omit` keys), or `show(job)` when it is done, or its error; exit 1 unless
    it is done."""
    if as_json:
        result = {k: v for k, v in (job.result or {}).items() if k not in omit}
        print_json({**result, "job": job.id, "status": job.status, "error": job.error})
    elif job.status == "done" and job.result:
        show(job)
    else:
        err.print(f"[red]{what} {job.status}:[/] {escape(job.error or '')}", highlight=False)
    if job.status != "done":
        raise typer.Exit(1)


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
