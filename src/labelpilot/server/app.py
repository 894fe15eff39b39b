"""The FastAPI application on one workspace."""

from __future__ import annotations

import contextlib
import errno
import html
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY, RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from labelpilot import __version__
from labelpilot.assist.click_box import DetectionCache
from labelpilot.assist.sessions import SessionPool
from labelpilot.errors import (
    ConflictError,
    LabelPilotError,
    TooManyAttemptsError,
    UndecidedError,
    WorkspaceError,
)
from labelpilot.jobs.engine import JobRunner
from labelpilot.jobs.kinds import HANDLERS
from labelpilot.server.schemas import AnnotationPublic
from labelpilot.settings import Settings
from labelpilot.thumbnails import Thumbnails
from labelpilot.transfer import collect_garbage
from labelpilot.users import LoginThrottle
from labelpilot.workspace import Workspace

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("labelpilot.server")


def create_app(ws: Workspace, settings: Settings | None = None, *,
               run_jobs: bool = True, static: Path = STATIC) -> FastAPI:
    settings = settings or Settings()
    from labelpilot.jobs.loop import start_if_due

    # idle, the runner checks whether the closed loop is due to train (a workspace setting)
    runner = JobRunner(ws, HANDLERS, workers=settings.job_workers,
                       poll_s=1.0 if settings.idle_poll else None,
                       item_delay_s=settings.job_item_delay, idle=lambda: start_if_due(ws))

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
        app.state.detections.close()
        app.state.hash_pool.shutdown(wait=False)

    app = FastAPI(title="LabelPilot", version=__version__, lifespan=lifespan,
                  description="Smart labeling for computer vision: images, annotations, "
                              "review, jobs. Every route but sign-in needs a bearer token.")
    app.state.workspace = ws
    app.state.settings = settings
    app.state.sessions = SessionPool(ws, max_disk_bytes=settings.embedding_cache_mb << 20)
    app.state.detections = DetectionCache()
    app.state.login_throttle = LoginThrottle()
    app.state.thumbnails = Thumbnails(ws.root / "thumbs", ws.blobs)
    app.state.reports = None  # the analytics' ReportCache, made on first use
    app.state.hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="labelpilot-hash")

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
        if isinstance(e, UndecidedError):
            body["pending"] = e.pending
        if isinstance(e, TooManyAttemptsError):
            headers = {"Retry-After": str(e.retry_after)}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(OSError)
    async def os_error(request: Request, e: OSError) -> JSONResponse:
        if e.errno == errno.ENOSPC:
            return JSONResponse({"detail": "the server's disk is full; nothing was saved",
                                 "hint": "ask the administrator to free space, then retry"},
                                status_code=507)
        log.exception("%s %s failed", request.method, request.url.path, exc_info=e)
        return JSONResponse({"detail": f"the server could not read or write a file "
                                       f"({e.strerror or type(e).__name__})"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""),
                   "type": err.get("type", "")} for err in e.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    # the POST routes that take a file, each with the file's own size limit
    files = {"/api/images": settings.max_upload_bytes, "/api/imports": settings.max_import_bytes}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Any:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if e.status_code == 413 and isinstance(limit, int):
            return too_large(file_limit(request.scope, files) or limit)
        return await http_exception_handler(request, e)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/redoc")):  # Swagger UI loads a CDN
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    # Bodies are counted as they stream in (chunked ones too) and refused past the limit;
    # uploads have a limit of their own (the image plus the form's overhead).
    app.add_middleware(BodyLimits, default=settings.max_request_bytes, files=files)

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    def favicon() -> Response:
        """Browsers ask for /favicon.ico whatever the page says: the SVG one."""
        return Response((static / "favicon.svg").read_bytes(), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False,
                   response_class=HTMLResponse)
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
        analytics,
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

    for module in (auth, users, project, images, segment, annotations, jobs, models, analytics):
        app.include_router(module.router, responses=ERRORS)
    return app


# The UI is one script and one stylesheet from this server; shapes are drawn on a canvas
# (style attributes position the grid's cells).
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

# multipart boundaries and headers around an uploaded file
UPLOAD_OVERHEAD = 64 * 1024


def file_limit(scope: Scope, files: dict[str, int]) -> int | None:
    """The file size limit of a route that takes a file (`files`: POST path -> limit)."""
    return files.get(scope["path"]) if scope["method"] == "POST" else None


class BodyLimits:
    """Request bodies counted as they stream in (chunked ones too) by Starlette's limiter,
    and refused with 413 past the limit: a file route's limit (`files`), or the API's."""

    def __init__(self, app: ASGIApp, *, default: int, files: dict[str, int]) -> None:
        self.default = RequestBodyLimitMiddleware(app, default)
        self.files = files
        # a file may take its limit; the form around it a little more
        self.file_limiters = {path: RequestBodyLimitMiddleware(app, n + UPLOAD_OVERHEAD)
                              for path, n in files.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.default(scope, receive, send)
            return
        file_bytes = file_limit(scope, self.files)
        limiter = self.default if file_bytes is None else self.file_limiters[scope["path"]]
        # a declared length over the limit: refused before a byte of the body is read
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limiter.max_body_size:
            await too_large(file_bytes or limiter.max_body_size)(scope, receive, send)
            return
        await limiter(scope, receive, send)


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"the request body is over the limit of {limit:,} bytes",
                         "hint": "send less at a time"}, status_code=413)


def _collect_quietly(ws: Workspace) -> None:
    with contextlib.suppress(Exception):
        collect_garbage(ws)


def ensure_admin(ws: Workspace) -> tuple[str, str] | None:
    """On a workspace with no users, create `admin` with a one-time password and return it.
    A workspace whose users include no active admin is refused, with the command that
    gives one back."""
    from labelpilot import users

    with ws.transaction() as conn:
        if users.count_users(conn):
            if not users.active_admins(conn):
                raise WorkspaceError(
                    "this workspace has users but no active admin: nobody could manage it",
                    hint=f"labelpilot users set {ws.root} NAME --role admin --active")
            return None
        password = users.new_password()
        users.add_user(conn, username="admin", password=password, role="admin",
                       must_change_password=True)
        return "admin", password
