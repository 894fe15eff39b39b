"""Click/box -> mask: interactive segmentation sessions over the workspace's images."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from labelpilot import review
from labelpilot.annotations import Mask
from labelpilot.errors import LabelPilotError
from labelpilot.models.registry import (
    get_manifest,
    load_model,
    segmenter_manifest,
    workspace_manifests,
)
from labelpilot.segment.base import Click, Prompt, PromptError
from labelpilot.segment.session import SegmentSession, mask_to_polygons
from labelpilot.server.deps import CurrentUser, WorkspaceDep
from labelpilot.server.schemas import (
    ClickBoxRequest,
    ClickBoxResult,
    SegmentProposal,
    SegmentRequest,
    SegmentResult,
)

router = APIRouter(prefix="/api/images", tags=["segment"])

_LOCK = threading.Lock()


def session_for(request: Request, ws: Any, name: str | None) -> tuple[SegmentSession, Any]:
    """The app's session for a model (one per model, its embeddings cached in memory and
    under the workspace's cache folder)."""
    manifest = segmenter_manifest(name, ws.models_dir)
    name = manifest.name
    state = request.app.state
    with _LOCK:
        sessions = getattr(state, "segment_sessions", None)
        if sessions is None:
            sessions = state.segment_sessions = {}
        sess = sessions.get(name)
        if sess is None:
            seg = load_model(name, ws.models_dir)
            sess = SegmentSession(seg, ws.root / "cache" / "embeddings" / name,
                                  max_disk_bytes=state.settings.embedding_cache_mb << 20)
            sessions[name] = sess
    return sess, manifest


def _loader(ws: Any, row: Any) -> Any:
    from labelpilot.prelabel import load_rgb

    return lambda: load_rgb(ws, row)


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


# ---- click -> box -----------------------------------------------------------------------
_DETECTIONS: OrderedDict[tuple[str, str], Any] = OrderedDict()


def _detections(ws: Any, model: Any, row: Any) -> Any:
    """The detector's boxes for an image, kept for the last 64 images (clicks come in runs)."""
    from labelpilot.prelabel import load_image

    key = (model.spec.source, str(row.sha256))
    with _LOCK:
        hit = _DETECTIONS.get(key)
        if hit is not None:
            _DETECTIONS.move_to_end(key)
            return hit
    found = model.detect(load_image(ws, row))
    with _LOCK:
        _DETECTIONS[key] = found
        while len(_DETECTIONS) > 64:
            _DETECTIONS.popitem(last=False)
    return found


def pick_box(det: Any, labels: Sequence[str], clicks: list[Click]
             ) -> tuple[tuple[float, ...], str, float] | None:
    """The highest-scored detection that holds every positive click and no negative one."""
    best = None
    for box, score, cls in zip(det.boxes, det.scores, det.classes, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)

        def inside(c: Click, x1: float = x1, y1: float = y1, x2: float = x2,
                   y2: float = y2) -> bool:
            return x1 <= c.x <= x2 and y1 <= c.y <= y2

        if all(inside(c) == c.positive for c in clicks) and (best is None or score > best[2]):
            best = ((x1, y1, x2, y2), labels[int(cls)], float(score))
    return best


@router.post("/{image_id}/click-box", response_model=ClickBoxResult,
             responses={422: {"description": "a prompt that cannot be answered"}})
def click_box(image_id: int, body: ClickBoxRequest, request: Request, user: CurrentUser,
              ws: WorkspaceDep) -> ClickBoxResult:
    """One click on an object -> its box: the detector's best proposal holding the clicks
    (positive clicks inside, negative ones outside), else the bounding box of the
    segmentation mask for the clicks. A second click corrects the first answer."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    clicks = [Click(c.x, c.y, c.positive) for c in body.clicks]
    prompt = Prompt(clicks)
    prompt.validate(row.width, row.height)
    if not any(c.positive for c in clicks):
        raise PromptError("click-box needs a positive click on the object")
    detector = body.detector
    if detector is None:
        found = [m for m in workspace_manifests(ws.models_dir).values() if m.kind == "detect"]
        detector = found[0].name if found else None
    if detector is not None:
        manifest = get_manifest(detector, ws.models_dir)
        if manifest.kind != "detect":
            raise PromptError(f"model {detector!r} is a {manifest.kind} model, not a detector")
        model = load_model(detector, ws.models_dir)
        hit = pick_box(_detections(ws, model, row), model.spec.labels, clicks)
        if hit is not None:
            box, label, score = hit
            return ClickBoxResult(box=list(box), label=label, score=score,
                                  source=manifest.source, method="detector")
    sess, seg_manifest = session_for(request, ws, body.segmenter)
    res = sess.segment(image_key(row), _loader(ws, row), prompt, (row.width, row.height))
    mask = res.proposals[0].mask if res.proposals else None
    if mask is None or not mask.any():
        raise PromptError("no object found under the click",
                          hint="click nearer the object's middle, or draw the box")
    ys, xs = np.nonzero(mask)
    return ClickBoxResult(box=[float(xs.min()), float(ys.min()), float(xs.max() + 1),
                               float(ys.max() + 1)], label=None,
                          score=res.proposals[0].quality, source=seg_manifest.source,
                          method="mask")
