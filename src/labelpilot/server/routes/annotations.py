from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from labelpilot import review
from labelpilot.annotations import shape_from_dict
from labelpilot.server.deps import AnnotationId, CurrentUser, WorkspaceDep
from labelpilot.server.schemas import (
    AnnotationPublic,
    AnnotationUpdate,
    CombineRequest,
    ConflictDetail,
)
from labelpilot.store.tables import MAX_INT

router = APIRouter(prefix="/api/annotations", tags=["annotations"])

_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ConflictDetail,
                   "description": "stale version: `current` is the annotation as it is now"}}


@router.get("/{annotation_id}", response_model=AnnotationPublic)
def get_annotation(annotation_id: AnnotationId, user: CurrentUser, ws: WorkspaceDep) -> AnnotationPublic:
    with ws.engine.connect() as conn:
        image_id, ann = review.get_annotation(conn, annotation_id)
        return AnnotationPublic.of(ann, image_id)


@router.patch("/{annotation_id}", response_model=AnnotationPublic, responses=_CONFLICT)
def update_annotation(annotation_id: AnnotationId, body: AnnotationUpdate, user: CurrentUser,
                      ws: WorkspaceDep) -> AnnotationPublic:
    """Change an annotation. Send the `version` you read: a stale one gets 409 with the
    current state, never a silent lost update."""
    with ws.transaction() as conn:
        changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"version"})
        if "shape" in changes:
            if body.shape is None:
                changes.pop("shape")
            else:
                changes["shape"] = shape_from_dict(body.shape.model_dump())
        if "label" in changes:
            if body.label is None:
                changes.pop("label")
            else:
                changes["label"] = body.label.strip()
        if changes.get("attributes", {}) is None:
            changes.pop("attributes")
        if "status" in changes and changes["status"] is None:
            changes.pop("status")
        image_id, saved = review.update_annotation(conn, annotation_id=annotation_id,
                                                   version=body.version, changes=changes,
                                                   user=user)
        return AnnotationPublic.of(saved, image_id)


@router.post("/{annotation_id}/combine", response_model=AnnotationPublic, responses=_CONFLICT)
def combine_annotation(annotation_id: AnnotationId, body: CombineRequest, user: CurrentUser,
                       ws: WorkspaceDep) -> AnnotationPublic:
    """Merge another shape of the image into this one (`union`: the other is deleted) or
    cut it out of this one (`subtract`). Polygonal shapes stay a polygon when the result is
    one piece; otherwise, or with a mask, the result is a mask."""
    with ws.transaction() as conn:
        image_id, saved = review.combine_annotations(
            conn, annotation_id=annotation_id, version=body.version, other_id=body.other,
            other_version=body.other_version, op=body.op, user=user)
        return AnnotationPublic.of(saved, image_id)


@router.delete("/{annotation_id}", status_code=204, response_class=Response,
               responses=_CONFLICT)
def delete_annotation(annotation_id: AnnotationId, user: CurrentUser, ws: WorkspaceDep,
                      version: Annotated[int, Query(ge=0, le=MAX_INT,
                                                    description="the version you read")]) -> None:
    with ws.transaction() as conn:
        review.delete_annotation(conn, annotation_id=annotation_id, version=version, user=user)
