"""The model server's HTTP API (FastAPI): `/v1/models`, `/v1/models/{name}/predict`,
`/healthz`, `/readyz`, `/metrics`.

Every `/v1` route and `/metrics` need a bearer token of the workspace's users (a sign-in
token of the label server, or a long-lived key from `labelpilot users add-key`); the two
probes answer anyone. Images come as multipart (`file`), as the raw body (`image/*` or
`application/octet-stream`) or as base64 in JSON (`{"image": ..., "min_score": ...}`);
answers use LabelPilot's shape vocabulary (the label server's and the exports').
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from labelpilot import __version__
from labelpilot.annotations import Annotation
from labelpilot.errors import (
    AuthError,
    LabelPilotError,
    UnavailableError,
    UnsupportedImageError,
    ValidationError,
)
from labelpilot.imageio import DEFAULT_MAX_PIXELS, decode_bgr
from labelpilot.serving.metrics import ServingMetrics
from labelpilot.serving.pool import ModelPool
from labelpilot.serving.workers import Loaded, ServingConfig
from labelpilot.users import UserInfo, user_for_token
from labelpilot.workspace import Workspace

log = logging.getLogger("labelpilot.serving")

MAX_BODY_BYTES = 32 * 1024 * 1024
bearer = HTTPBearer(auto_error=False)


def proposal_json(a: Annotation) -> dict[str, Any]:
    out: dict[str, Any] = {"label": a.label, "shape": a.shape.to_dict(), "score": a.score,
                           "source": a.source}
    if a.text is not None:
        out["text"] = a.text
    if a.attributes:
        out["attributes"] = a.attributes
    return out


def model_json(loaded: Loaded, depth: int, capacity: int) -> dict[str, Any]:
    return {"name": loaded.name, "kind": loaded.kind, "version": loaded.version,
            "variant": loaded.variant, "labels": list(loaded.labels),
            "metrics": loaded.metrics,
            "batching": {"max_batch": loaded.batching.max_batch, "note": loaded.batching.note},
            "queue": {"waiting": depth, "capacity": capacity},
            "ms_per_image": round(loaded.ms_per_image, 2),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loaded.loaded_at))}


def signed_in(request: Request,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
              ) -> UserInfo:
    """The workspace's user whose token (a sign-in token or an API key) the request bears."""
    if creds is None or not creds.credentials:
        raise AuthError("no bearer token", hint="send Authorization: Bearer <token> (a "
                        "sign-in token, or a key from `labelpilot users add-key`)")
    ws: Workspace = request.app.state.workspace
    with ws.engine.connect() as conn:
        return user_for_token(conn, creds.credentials)


User = Annotated[UserInfo, Depends(signed_in)]


def create_model_server(ws: Workspace, names: list[str] | None = None,
                        config: ServingConfig | None = None, *,
                        max_body_bytes: int = MAX_BODY_BYTES,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        label_studio_url: str | None = None,
                        label_studio_key: str | None = None) -> FastAPI:
    config = config or ServingConfig()
    metrics = ServingMetrics()
    pool = ModelPool(ws.models_dir, names, config, metrics)
    pool.check_names()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # models load in the background: /healthz answers at once, /readyz once loaded
        loader = threading.Thread(target=pool.start, name="serve-load", daemon=True)
        loader.start()
        yield
        await anyio.to_thread.run_sync(loader.join)
        await anyio.to_thread.run_sync(pool.close)

    app = FastAPI(title="LabelPilot model server", version=__version__, lifespan=lifespan)
    app.state.pool = pool
    app.state.workspace = ws
    app.state.metrics = metrics

    @app.exception_handler(LabelPilotError)
    async def user_error(request: Request, e: LabelPilotError) -> JSONResponse:
        body: dict[str, Any] = {"detail": e.message}
        if e.hint:
            body["hint"] = e.hint
        headers = None
        if isinstance(e, UnavailableError):
            headers = {"Retry-After": str(e.retry_after)}
        elif e.http_status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(body, status_code=e.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "")}
                  for err in e.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_bytes)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["probes"])
    def readyz() -> JSONResponse:
        body = {"ready": pool.ready, "models": sorted(pool.workers), "failed": pool.failed}
        return JSONResponse(body, status_code=200 if pool.ready else 503)

    @app.get("/metrics", tags=["probes"])
    def prometheus(user: User) -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", tags=["models"])
    def models(user: User) -> dict[str, Any]:
        return {"data": [model_json(w.current, w.depth, config.queue_size)
                         for _, w in sorted(pool.workers.items())],
                "failed": pool.failed,
                "batching": {"max_batch": config.max_batch,
                             "max_wait_ms": config.max_wait_s * 1000}}

    @app.get("/v1/models/{name}", tags=["models"])
    def one_model(name: str, user: User) -> dict[str, Any]:
        w = pool.worker(name)
        return model_json(w.current, w.depth, config.queue_size)

    @app.post("/v1/models/{name}/predict", tags=["models"])
    async def predict(name: str, request: Request, user: User,
                      min_score: Annotated[float | None, Query(ge=0, le=1)] = None
                      ) -> Response:
        started = time.monotonic()
        worker = pool.worker(name)
        code = 200
        try:
            with worker.arriving():  # a batch being formed waits for this one
                data, given_score, filename = await _image_of(request)
            score = min_score if min_score is not None else given_score
            # the body's bytes (base64 decoded in the worker's thread, not the event loop)
            loaded, proposals, timing, (w, h) = await worker.ask(
                lambda: decode_bgr(data(), name=filename, max_pixels=max_pixels),
                min_score=score or 0.0)
            body = {"model": loaded.name, "version": loaded.version, "variant": loaded.variant,
                    "width": w, "height": h,
                    "predictions": [proposal_json(a) for a in proposals], "timing": timing}
            return Response(orjson.dumps(body), media_type="application/json")
        except LabelPilotError as e:
            code = e.http_status
            if code != 503:
                metrics.errors.labels(name, type(e).__name__).inc()
            raise
        finally:
            metrics.requests.labels(name, str(code)).inc()
            metrics.latency.labels(name).observe(time.monotonic() - started)

    from labelpilot.serving import labelstudio

    app.include_router(labelstudio.router(
        labelstudio.LabelStudioBackend(label_studio_url, label_studio_key)))
    return app


async def _image_of(request: Request) -> tuple[Callable[[], bytes], float | None, str]:
    """What gives the image bytes of a predict request (called off the event loop: base64
    decoding is slow), the min_score its JSON gave, and a name for messages."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        part = form.get("file") or form.get("image")
        if part is None or isinstance(part, str):
            raise ValidationError("the form has no file field 'file'",
                                  hint="send the image as multipart field 'file'")
        data = await part.read()
        return (lambda: data), None, part.filename or "file"
    if kind == "application/json":
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as e:
            raise ValidationError(f"the body is not JSON ({e})") from None
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise ValidationError("the JSON body has no 'image' (base64 of the image file)",
                                  hint='send {"image": "<base64>", "min_score": 0.3}')
        score = body.get("min_score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                                  or not 0 <= score <= 1):
            raise ValidationError("min_score must be a number from 0 to 1")
        raw = body["image"]
        if raw.startswith("data:") and "," in raw:
            raw = raw.split(",", 1)[1]  # a data: URL

        def decoded() -> bytes:
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError("'image' is not valid base64") from None

        return decoded, score, "image"
    if kind.startswith("image/") or kind == "application/octet-stream":
        data = await request.body()
        return (lambda: data), None, "body"
    raise UnsupportedImageError(f"cannot read an image from a {kind or 'typeless'} body",
                                hint="send multipart/form-data (field 'file'), image/* bytes, or "
                                     'JSON {"image": "<base64>"}')
