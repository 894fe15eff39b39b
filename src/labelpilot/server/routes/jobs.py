from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from labelpilot.archives import ARCHIVE_SUFFIXES
from labelpilot.errors import AuthError, LabelPilotError, NotFoundError
from labelpilot.executors import ExecutorSpec
from labelpilot.formats import get_format
from labelpilot.jobs import engine, kinds
from labelpilot.jobs.autolabel import plan_autolabel
from labelpilot.jobs.imports import uploads_dir
from labelpilot.jobs.optimize import plan_optimize
from labelpilot.jobs.train import (
    ensure_no_other_training,
    plan_training,
    training_readiness,
    training_warnings,
)
from labelpilot.proposals import prelabel_readiness
from labelpilot.server.deps import (
    CanCancelJobs,
    CanExport,
    CanImport,
    CanOptimize,
    CanPrelabel,
    CanSelect,
    CanTrain,
    CurrentUser,
    JobId,
    SettingsDep,
    TokenDep,
    WorkspaceDep,
    current_user,
)
from labelpilot.server.schemas import (
    AutolabelCreate,
    ExportCreate,
    JobPublic,
    OptimizeCreate,
    Readiness,
    SelectCreate,
    TrainCreate,
)
from labelpilot.settings import Settings

router = APIRouter(prefix="/api", tags=["jobs"])
# an event stream reads its job at most this often while it moves, and this often when no
# change is signalled (to end the stream of a user whose token was revoked)
SSE_MIN_INTERVAL_S = 0.25
SSE_CHECK_S = 5.0


def _public(job: engine.JobInfo) -> JobPublic:
    """A job as every signed-in user sees it: without the server's file paths."""
    public = job.public()
    for key in ("result", "params"):
        if public.get(key):
            public[key] = {k: v for k, v in public[key].items()
                           if not (isinstance(v, str) and os.path.isabs(v))}
    return JobPublic(**public)


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(user: CurrentUser, ws: WorkspaceDep) -> list[JobPublic]:
    with ws.engine.connect() as conn:
        return [_public(j) for j in engine.list_jobs(conn)]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: JobId, user: CurrentUser, ws: WorkspaceDep) -> JobPublic:
    with ws.engine.connect() as conn:
        return _public(engine.get_job(conn, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: JobId, user: CanCancelJobs, ws: WorkspaceDep) -> JobPublic:
    with ws.transaction() as conn:
        return _public(engine.request_cancel(conn, job_id))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: JobId, user: CurrentUser, ws: WorkspaceDep, token: TokenDep,
                     request: Request, settings: SettingsDep) -> StreamingResponse:
    """Server-Sent Events: a `progress` event whenever the job moves (done/total, rate,
    ETA), ending with its final state. The stream also ends when the user's token stops
    being valid (signed out, deactivated). The stream reads the job when it is signalled
    to have changed (`store.signals`), at most 4 times a second, and otherwise every 5 s."""
    def read() -> engine.JobInfo | None:
        """The job now, or None when the user may no longer follow it (read off the
        event loop: the database is not asynchronous)."""
        try:
            current_user(ws, token, request)
        except AuthError:
            return None
        with ws.engine.connect() as conn:
            return engine.get_job(conn, job_id)

    if await run_in_threadpool(read) is None:
        raise AuthError("not signed in")

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        moved = asyncio.Event()

        def signalled(changed: int | None, _event: str) -> None:
            if changed is None or changed == job_id:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(moved.set)

        signals = ws.job_signals
        unsubscribe = signals.subscribe(signalled)
        # (idle_poll: the 0.5 s polling of before, the reference of benchmarks/idle_cost.py)
        check_s = (0.5 - SSE_MIN_INTERVAL_S if settings.idle_poll
                   else min(signals.fallback_s, SSE_CHECK_S))
        try:
            last = None
            while True:
                moved.clear()
                job = await run_in_threadpool(read)
                if job is None:
                    return
                state = (job.status, job.done, job.total, job.cancel_requested)
                if state != last:
                    last = state
                    payload = _public(job).model_dump_json()
                    yield f"event: progress\ndata: {payload}\n\n"
                if job.status in engine.TERMINAL or await request.is_disconnected():
                    return
                # the job's next change, or (token still valid? a change not signalled?)
                # a look anyway every few seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), check_s)
                await asyncio.sleep(SSE_MIN_INTERVAL_S)
        finally:
            unsubscribe()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


@router.post("/exports", response_model=JobPublic, status_code=202, tags=["exports"])
def start_export(body: ExportCreate, user: CanExport, ws: WorkspaceDep) -> JobPublic:
    """Start an export job; follow it under /api/jobs/{id}, then download it."""
    with ws.transaction() as conn:
        get_format(body.format)
        job = kinds.submit(conn, kind="export", params=json.loads(body.model_dump_json()),
                           user=user.username)
    return _public(job)


@router.post("/imports", response_model=JobPublic, status_code=202, tags=["imports"],
             responses={413: {"description": "over the import size limit"}})
async def start_import(
    user: CanImport, ws: WorkspaceDep,
    file: Annotated[UploadFile, File(description="a .zip or .tar(.gz) of images and label "
                                                 "files, laid out as the format has them")],
    format: Annotated[str, Form(description="the label format (GET /api/project/formats)")],
    split: Annotated[Literal["train", "val", "test"] | None, Form()] = None,
    strict: Annotated[bool, Form(description="refuse classes the project lacks")] = False,
    skip_invalid: Annotated[bool, Form(description="import the rest past bad images")] = False,
) -> JobPublic:
    """Import an archive of images and label files as a job, with the same checks as
    `labelpilot import`: all or nothing, and what was skipped and why in its result."""
    get_format(format)
    name = file.filename or "upload.zip"
    suffix = next((s for s in ARCHIVE_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise LabelPilotError(f"{name!r} is not an archive LabelPilot reads",
                              hint=f"send a {', '.join(ARCHIVE_SUFFIXES)} of the dataset folder")
    folder = uploads_dir(ws.root)
    target = folder / f"upload-{uuid.uuid4().hex}{suffix}"

    def store() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        with tmp.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)
        os.replace(tmp, target)

    await run_in_threadpool(store)
    try:
        with ws.transaction() as conn:
            job = kinds.submit(conn, kind="import", user=user.username, params={
                "path": str(target), "name": name, "format": format, "split": split,
                "strict": strict, "skip_invalid": skip_invalid})
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return _public(job)


def server_executor(settings: Settings, kind: str | None) -> ExecutorSpec:
    """The executor a request's job runs on: the one it names (local or ray) or the
    server's; a Ray cluster only as the server's settings describe it."""
    kind = kind or settings.executor
    if kind != "ray":
        return ExecutorSpec(kind)
    return ExecutorSpec("ray", settings.ray_address, settings.ray_workers,
                        settings.ray_gpus_per_worker, settings.ray_blobs, settings.s3_endpoint)


@router.post("/autolabel", response_model=JobPublic, status_code=202, tags=["assist"])
def start_autolabel(body: AutolabelCreate, user: CanPrelabel, ws: WorkspaceDep,
                    settings: SettingsDep) -> JobPublic:
    """Pre-label images with a model, as a job (proposals are stored as `predicted`):
    OCR lines, detector boxes (classes matched to the project's labels by name, `map`
    first), or, with a segmenter, masks for whole images ("segment everything")."""
    kind, params = plan_autolabel(ws, model=body.model, images=body.images,
                                  min_score=body.min_score, mapping=body.map,
                                  unmapped=body.unmapped, lines=body.lines,
                                  executor=server_executor(settings, body.executor))
    with ws.engine.connect() as conn:
        _, why_not = prelabel_readiness(conn, body.images)
    if why_not is not None:  # said before a job is queued
        raise LabelPilotError(why_not, hint="choose all images not done to pre-label them "
                              "again" if body.images == "new" else "re-open images to "
                              "pre-label them")
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind=kind, params=params, user=user.username)
    return _public(job)


@router.post("/select", response_model=JobPublic, status_code=202, tags=["assist"])
def start_select(body: SelectCreate, user: CanSelect, ws: WorkspaceDep, settings: SettingsDep) -> JobPublic:
    """Choose what to label next (active learning), as a job: the images nobody has
    reviewed are scored by the model (uncertainty), embedded with its backbone
    (diversity), both (hybrid) or drawn at random; the `budget` chosen become the labeling
    queue's first (`POST /api/images/next`, the grid's default order), each with its score
    and reason. Checked before it is queued: the strategy, the model's task, the pool."""
    from labelpilot.active.select import plan_select

    params = plan_select(ws, strategy=body.strategy, budget=body.budget, model=body.model,
                         split=body.split, seed=body.seed,
                         executor=server_executor(settings, body.executor))
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="select", params=params.public(), user=user.username)
    return _public(job)


@router.get("/select/check", response_model=Readiness, tags=["assist"])
def check_select(user: CanSelect, ws: WorkspaceDep,
                 split: Literal["train", "val", "test", "unassigned"] | None = None
                 ) -> Readiness:
    """How many images a selection chooses from (nobody has reviewed them), and why none."""
    from labelpilot.active.select import pool_size

    n = pool_size(ws, split)
    reason = None if n else ("no images left to choose from: every image is reviewed, "
                             "being reviewed or labeled by a person")
    return Readiness(ready=n > 0, reason=reason, images=n)


@router.get("/train/check", response_model=Readiness, tags=["assist"])
def check_training(task: Literal["ocr-rec", "detect"], user: CanTrain,
                   ws: WorkspaceDep) -> Readiness:
    """Whether training `task` can start now, and why not (shown next to the button)."""
    reason = training_readiness(ws, task)
    return Readiness(ready=reason is None, reason=reason, images=None,
                     warnings=training_warnings(ws, task) if reason is None else [])


@router.get("/autolabel/check", response_model=Readiness, tags=["assist"])
def check_autolabel(user: CanPrelabel, ws: WorkspaceDep,
                    images: Literal["new", "all"] = "new") -> Readiness:
    """How many images a pre-labeling run would work on, and why none."""
    with ws.engine.connect() as conn:
        n, reason = prelabel_readiness(conn, images)
    return Readiness(ready=n > 0, reason=reason, images=n)


@router.post("/train", response_model=JobPublic, status_code=202, tags=["assist"])
def start_training(body: TrainCreate, user: CanTrain, ws: WorkspaceDep) -> JobPublic:
    """Fine-tune on the reviewed labels of the train split, as a job (one at a time): the
    text recognizer (`ocr-rec`) or a detector (`detect`, custom auto-label)."""
    kind, params = plan_training(task=body.task, init=body.init, epochs=body.epochs,
                                 minutes=body.minutes, name=body.name, base=body.base,
                                 tile=body.tile, overlap=body.overlap)
    why_not = training_readiness(ws, body.task)
    if why_not is not None:
        raise LabelPilotError(why_not, hint="nothing was started")
    with ws.transaction() as conn:
        ensure_no_other_training(conn)
        job = kinds.submit(conn, kind=kind, params=params, user=user.username)
    return _public(job)


@router.post("/models/{name}/optimize", response_model=JobPublic, status_code=202,
             tags=["models"])
def start_optimize(name: str, body: OptimizeCreate, user: CanOptimize, ws: WorkspaceDep,
                   settings: SettingsDep) -> JobPublic:
    """Make a faster variant of a workspace model or the built-in OCR model (INT8, and for
    OCR recognizers an output layer pruned to the characters in use) as a job, kept only
    if it passes the accuracy and speed gate (see `labelpilot models optimize`); the job's
    result has both models' figures and why the variant was kept or refused."""
    from labelpilot.models.registry import get_manifest

    get_manifest(name, ws.models_dir)  # 404 for a model that does not exist
    params = plan_optimize(name, **body.model_dump(exclude={"executor"}),
                           executor=server_executor(settings, body.executor))
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="optimize", params=params, user=user.username)
    return _public(job)


@router.get("/exports/{job_id}/download", response_class=FileResponse, tags=["exports"],
            responses={200: {"content": {"application/zip": {}}}})
def download_export(job_id: JobId, user: CanExport, ws: WorkspaceDep) -> FileResponse:
    with ws.engine.connect() as conn:
        job = engine.get_job(conn, job_id)
        if job.kind != "export":
            raise NotFoundError(f"job {job_id} is not an export")
        if job.status != "done" or not job.result:
            raise LabelPilotError(f"export {job_id} is {job.status}, not done",
                                  hint="wait for the job to finish")
        return FileResponse(job.result["zip"], media_type="application/zip",
                            filename=f"labelpilot-export-{job_id}.zip")


