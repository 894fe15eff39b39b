"""The FastAPI application on one workspace."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from labelpilot import __version__
from labelpilot.assist.click_box import DetectionCache
from labelpilot.assist.sessions import SessionPool
from labelpilot.errors import ConflictError, LabelPilotError
from labelpilot.jobs.engine import JobRunner
from labelpilot.jobs.kinds import HANDLERS
from labelpilot.server.schemas import AnnotationPublic
from labelpilot.settings import Settings
from labelpilot.transfer import collect_garbage
from labelpilot.workspace import Workspace

STATIC = Path(__file__).parent / "static"


def create_app(ws: Workspace, settings: Settings | None = None, *,
               run_jobs: bool = True, static: Path = STATIC) -> FastAPI:
    settings = settings or Settings()
    runner = JobRunner(ws, HANDLERS, workers=settings.job_workers, item_delay_s=settings.job_item_delay)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's thread pool (40 threads by default). On a few cores
        # that many threads mostly contend for the GIL and the database; fewer threads
        # gave more requests per second and a shorter tail here (benchmarks/load_annotators.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # image files a killed import or upload left behind (skipped while one runs)
        threading.Thread(target=_collect_quietly, args=(ws,), daemon=True,
                         name="labelpilot-blob-gc").start()
        if run_jobs:
            runner.start()
        yield
        if run_jobs:
            runner.stop()
        app.state.sessions.close()

    app = FastAPI(title="LabelPilot", version=__version__, lifespan=lifespan,
                  description="Smart labeling for computer vision: images, annotations, "
                              "review, jobs. Every route but sign-in needs a bearer token.")
    app.state.workspace = ws
    app.state.settings = settings
    app.state.sessions = SessionPool(ws, max_disk_bytes=settings.embedding_cache_mb << 20)
    app.state.detections = DetectionCache()

    @app.exception_handler(LabelPilotError)
    async def user_error(request: Request, e: LabelPilotError) -> JSONResponse:
        status = e.http_status
        body: dict[str, Any] = {"detail": e.message}
        if e.hint:
            body["hint"] = e.hint
        if isinstance(e, ConflictError):
            body["current"] = (AnnotationPublic.of(e.current, e.image_id).model_dump(mode="json")
                               if e.current is not None else None)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""),
                   "type": err.get("type", "")} for err in e.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes + 1_000_000:
            return JSONResponse({"detail": f"the request is over the limit of "
                                           f"{settings.max_upload_bytes:,} bytes"}, status_code=413)
        return await call_next(request)

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home() -> str:
        """The web UI; a plain status page if its script was not built (`make web`)."""
        if (static / "app.js").is_file():
            return (static / "index.html").read_text(encoding="utf-8")
        from labelpilot.store import repo

        with ws.engine.connect() as conn:
            stats = repo.stats(conn)
        rows = "".join(
            f"<tr><td>{html.escape(group.replace('_', ' '))}</td><td>{html.escape(str(k))}</td>"
            f"<td>{v}</td></tr>"
            for group in ("images_by_review_state", "images_by_split", "annotations_by_status",
                          "annotations_by_label")
            for k, v in stats[group].items())
        return (f"<!doctype html><meta charset=utf-8><title>LabelPilot: "
                f"{html.escape(ws.config.name)}</title><body style='font-family:sans-serif'>"
                f"<h1>{html.escape(ws.config.name)}</h1><p>{html.escape(ws.config.task)} project: "
                f"{stats['images']} images, {stats['annotations']} annotations</p>"
                f"<table border=1 cellpadding=4>{rows}</table>"
                f"<p>The web UI is not built (run <code>make web</code>). API: "
                f"<a href='/openapi.json'>/openapi.json</a>.</p>")

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    from labelpilot.server.routes import (
        annotations,
        auth,
        images,
        jobs,
        models,
        project,
        segment,
        users,
    )
    from labelpilot.server.schemas import ERRORS

    for module in (auth, users, project, images, segment, annotations, jobs, models):
        app.include_router(module.router, responses=ERRORS)
    return app


def _collect_quietly(ws: Workspace) -> None:
    with contextlib.suppress(Exception):
        collect_garbage(ws)


def ensure_admin(ws: Workspace) -> tuple[str, str] | None:
    """On a workspace with no users, create `admin` with a one-time password and return it."""
    from labelpilot import users

    with ws.engine.begin() as conn:
        if users.count_users(conn):
            return None
        password = users.new_password()
        users.add_user(conn, username="admin", password=password, role="admin")
        return "admin", password
