"""Smart-tool routes: click/box -> mask over interactive segmentation sessions, click -> box.
The work is done by `labelpilot.assist`; these parse, call it and shape the answer."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter

from labelpilot import review
from labelpilot.annotations import Mask, mask_to_polygons
from labelpilot.assist.click_box import click_box as find_box
from labelpilot.assist.click_box import warm_boxes
from labelpilot.errors import PromptError
from labelpilot.geometry.contours import drop_fragments
from labelpilot.models.base import Click, Prompt
from labelpilot.server.deps import CurrentUser, DetectionsDep, ImageId, SessionsDep, WorkspaceDep
from labelpilot.server.schemas import (
    ClickBoxRequest,
    ClickBoxResult,
    SegmentProposal,
    SegmentRequest,
    SegmentResult,
)

router = APIRouter(prefix="/api/images", tags=["segment"])


@router.post("/{image_id}/segment", response_model=SegmentResult,
             responses={422: {"description": "a prompt that cannot be answered"}})
def segment(image_id: ImageId, body: SegmentRequest, user: CurrentUser, ws: WorkspaceDep,
            sessions: SessionsDep) -> SegmentResult:
    """Clicks and/or a box (and the mask being corrected) -> 1-3 masks with their predicted
    quality, as polygons (holes kept; `tolerance` in pixels) or one RLE mask. Nothing is
    stored: the client saves the chosen one as an annotation (source = the model)."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
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
    res, manifest = sessions.segment(row, prompt, body.model)
    proposals = []
    for p in res.proposals:
        # one object: the slivers a segmenter leaves along edges are not parts of it
        mask = drop_fragments(p.mask)
        area = int(mask.sum())
        m = Mask.from_array(mask.astype(np.uint8))
        if body.output == "mask":
            shapes: list[Any] = [{"type": "mask", "rle": m.rle, "size": [m.height, m.width]}]
        else:
            shapes = [{"type": "polygon", "points": [list(q) for q in poly.points],
                       "holes": [[list(q) for q in h] for h in poly.holes]}
                      for poly in mask_to_polygons(mask, body.tolerance)]
        proposals.append(SegmentProposal(quality=p.quality, area=area, rle=m.rle, shapes=shapes))
    return SegmentResult(model=manifest.name, source=manifest.source, proposals=proposals,
                         warnings=res.warnings, embed_ms=res.embed_ms, decode_ms=res.decode_ms,
                         cached=res.cached)


@router.post("/{image_id}/segment/prepare", status_code=202)
def prepare(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep, sessions: SessionsDep,
            detections: DetectionsDep, model: str | None = None) -> dict[str, str]:
    """Compute the image's embedding in the background (the UI calls this for the next
    images of its queue), and the default detector's boxes for click to box, so that the
    first click on it is answered at once."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    warm_boxes(sessions, detections, row)
    queued, manifest = sessions.prepare(row, model)
    return {"model": manifest.name, "status": "queued" if queued else "ready"}


@router.post("/{image_id}/click-box", response_model=ClickBoxResult,
             responses={422: {"description": "a prompt that cannot be answered"}})
def click_box(image_id: ImageId, body: ClickBoxRequest, user: CurrentUser, ws: WorkspaceDep,
              sessions: SessionsDep, detections: DetectionsDep) -> ClickBoxResult:
    """One click on an object -> its box: the detector's best proposal holding the clicks
    (positive clicks inside, negative ones outside), else the bounding box of the
    segmentation mask for the clicks. A second click corrects the first answer."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    answer = find_box(sessions, detections, row, [Click(c.x, c.y, c.positive) for c in body.clicks],
                      detector=body.detector, segmenter=body.segmenter)
    return ClickBoxResult(box=list(answer.box), label=answer.label, score=answer.score,
                          source=answer.source, method=answer.method)
