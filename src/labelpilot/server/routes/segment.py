"""Click/box -> mask: interactive segmentation sessions over the workspace's images."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from labelpilot import review
from labelpilot.annotations import Mask
from labelpilot.errors import LabelPilotError
from labelpilot.models.registry import SEGMENTER_KINDS, default_segmenter, get_manifest, load_model
from labelpilot.segment.base import Click, Prompt, PromptError
from labelpilot.segment.session import SegmentSession, mask_to_polygons
from labelpilot.server.deps import CurrentUser, WorkspaceDep
from labelpilot.server.schemas import SegmentProposal, SegmentRequest, SegmentResult

router = APIRouter(prefix="/api/images", tags=["segment"])

_LOCK = threading.Lock()


def session_for(request: Request, ws: Any, name: str | None) -> tuple[SegmentSession, Any]:
    """The app's session for a model (one per model, its embeddings cached in memory and
    under the workspace's cache folder)."""
    name = name or default_segmenter(ws.models_dir)
    manifest = get_manifest(name, ws.models_dir)
    if manifest.kind not in SEGMENTER_KINDS:
        raise PromptError(f"model {name!r} is a {manifest.kind} model, not an interactive "
                          "segmenter", hint="pick one of kind " + ", ".join(SEGMENTER_KINDS))
    state = request.app.state
    with _LOCK:
        sessions = getattr(state, "segment_sessions", None)
        if sessions is None:
            sessions = state.segment_sessions = {}
        sess = sessions.get(name)
        if sess is None:
            seg = load_model(name, ws.models_dir)
            sess = SegmentSession(seg, ws.root / "cache" / "embeddings" / name)
            sessions[name] = sess
    return sess, manifest


def _loader(ws: Any, row: Any) -> Any:
    from labelpilot.prelabel import load_image

    return lambda: np.ascontiguousarray(load_image(ws, row)[..., ::-1])


def image_key(row: Any) -> str:
    return f"{row.sha256}"


@router.post("/{image_id}/segment", response_model=SegmentResult,
             responses={422: {"description": "a prompt that cannot be answered"}})
def segment(image_id: int, body: SegmentRequest, request: Request, user: CurrentUser,
            ws: WorkspaceDep) -> SegmentResult:
    """Clicks and/or a box (and the mask being corrected) -> 1-3 masks with their predicted
    quality, as polygons (holes kept; `tolerance` in pixels) or one RLE mask. Nothing is
    stored: the client saves the chosen one as an annotation (source = the model)."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    sess, manifest = session_for(request, ws, body.model)
    previous = None
    if body.previous is not None:
        h, w = body.previous.size
        if (w, h) != (row.width, row.height):
            raise PromptError(f"previous mask is {w}x{h}, the image {row.width}x{row.height}")
        try:
            previous = Mask(body.previous.rle, h, w).to_array().astype(bool)
        except Exception:
            raise PromptError("previous.rle is not a valid COCO RLE string") from None
    prompt = Prompt([Click(c.x, c.y, c.positive) for c in body.clicks],
                    tuple(body.box) if body.box else None, previous)  # type: ignore[arg-type]
    res = sess.segment(image_key(row), _loader(ws, row), prompt, (row.width, row.height))
    proposals = []
    for p in res.proposals:
        area = int(p.mask.sum())
        m = Mask.from_array(p.mask.astype(np.uint8))
        if body.output == "mask":
            shapes: list[Any] = [{"type": "mask", "rle": m.rle, "size": [m.height, m.width]}]
        else:
            shapes = [{"type": "polygon", "points": [list(q) for q in poly.points],
                       "holes": [[list(q) for q in h] for h in poly.holes]}
                      for poly in mask_to_polygons(p.mask, body.tolerance)]
        proposals.append(SegmentProposal(quality=p.quality, area=area, rle=m.rle, shapes=shapes))
    return SegmentResult(model=manifest.name, source=manifest.source, proposals=proposals,
                         warnings=res.warnings, embed_ms=res.embed_ms, decode_ms=res.decode_ms,
                         cached=res.cached)


@router.post("/{image_id}/segment/prepare", status_code=202)
def prepare(image_id: int, request: Request, user: CurrentUser, ws: WorkspaceDep,
            model: str | None = None) -> dict[str, str]:
    """Compute the image's embedding in the background (the UI calls this for the next
    images of its queue), so the first click on it is answered at once."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    sess, manifest = session_for(request, ws, model)
    fut = sess.precompute(image_key(row), _loader(ws, row))
    return {"model": manifest.name, "status": "queued" if fut is not None else "ready"}


def prepare_quietly(request: Request, ws: Any, row: Any) -> None:
    """Precompute with the default segmenter; a failure here only costs the first click."""
    try:
        sess, _ = session_for(request, ws, None)
        sess.precompute(image_key(row), _loader(ws, row))
    except LabelPilotError:
        pass
