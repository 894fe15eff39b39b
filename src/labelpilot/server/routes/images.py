from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from labelpilot import review
from labelpilot.annotations import Annotation as AnnotationRecord
from labelpilot.annotations import ReviewState, shape_from_dict
from labelpilot.assist.click_box import warm_boxes
from labelpilot.assist.recognize import recognize_quad
from labelpilot.errors import PayloadTooLargeError, ValidationError
from labelpilot.models.registry import list_models
from labelpilot.server.deps import (
    CurrentUser,
    DetectionsDep,
    ImageId,
    SessionsDep,
    SettingsDep,
    WorkspaceDep,
)
from labelpilot.server.schemas import (
    AnnotationCreate,
    AnnotationPublic,
    AnnotationsPublic,
    AssignRequest,
    AssignResult,
    AuditEntryPublic,
    BulkResult,
    BulkStatus,
    CommentCreate,
    ImagePublic,
    ImagesPublic,
    ImageUpdate,
    Neighbors,
    RecognizeRequest,
    RecognizeResult,
    UploadResult,
)
from labelpilot.store import repo
from labelpilot.store.images import UNASSIGNED
from labelpilot.store.tables import MAX_INT
from labelpilot.thumbnails import class_colour, with_shapes
from labelpilot.transfer import add_image

router = APIRouter(prefix="/api/images", tags=["images"])

_MEDIA = {".jpg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp", ".tif": "image/tiff",
          ".webp": "image/webp"}


def _filters(
    review_state: ReviewState | None = None,
    split: Literal["train", "val", "test", "unassigned"] | None = None,
    label: str | None = None, source: str | None = None,
    low_confidence: Annotated[bool | None, Query(
        description="only images with (true) / without (false) proposals scored under 0.8")] = None,
    q: Annotated[str | None, Query(max_length=200, description=(
        "text in the file name or in a transcription (case-insensitive)"))] = None,
    assignee: Annotated[str | None, Query(max_length=100, description=(
        f"the person the images are assigned to; {UNASSIGNED} for no one"))] = None,
    tag: Annotated[str | None, Query(max_length=200, description="a tag the image carries")] = None,
) -> review.ImageFilter:
    """A list of images' filters, as the list and the editor's neighbours take them."""
    return review.ImageFilter(review_state, split, label, source, low_confidence, q,
                              assignee, tag)


ListFilters = Annotated[review.ImageFilter, Depends(_filters)]
# queue: the labeling queue's order (an active-learning selection's images first, in its
# order, then the rest by id); id alone when nothing is selected
Sort = Literal["queue", "id", "file_name", "review_state"]


@router.get("", response_model=ImagesPublic)
def list_images(
    user: CurrentUser, ws: WorkspaceDep, filters: ListFilters,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    sort: Sort = "queue",
) -> ImagesPublic:
    with ws.engine.connect() as conn:
        rows, total = review.list_images(conn, filters=filters, offset=offset, limit=limit,
                                         sort=sort)
        return ImagesPublic(data=[ImagePublic.of(r, n, stamp) for r, n, stamp in rows],
                            count=total)


@router.post("", response_model=UploadResult, status_code=201,
             responses={200: {"model": UploadResult, "description": "already in the workspace"},
                        413: {"description": "over the size or pixel limit"},
                        415: {"description": "not a supported image"}})
async def upload_image(
    user: CurrentUser, ws: WorkspaceDep, settings: SettingsDep, response: Response,
    file: Annotated[UploadFile, File(description="the image; its type is read from its bytes")],
    split: Annotated[Literal["train", "val", "test"] | None, Form()] = None,
) -> UploadResult:
    """Upload one image. The type comes from the content, EXIF orientation is applied, the
    file is stored by its hash; the same image twice is stored once."""
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLargeError(f"the upload is over the limit of {settings.max_upload_bytes:,} bytes")
    # Decoding and hashing the image and writing it are blocking work: off the event loop.
    row, created = await run_in_threadpool(add_image, ws, data=data,
                                           name=file.filename or "upload", split=split)
    if not created:
        response.status_code = 200
    return UploadResult(**ImagePublic.of(row).model_dump(), created=created)


@router.post("/next", response_model=ImagePublic,
             responses={204: {"description": "nothing left to label"}})
def next_image(user: CurrentUser, ws: WorkspaceDep, settings: SettingsDep,
               sessions: SessionsDep, detections: DetectionsDep,
               queue: Literal["label", "review"] = "label") -> ImagePublic | Response:
    """Claim the next image: not done, not claimed by someone else (a lease). The `label`
    queue hands out the images assigned to the user first, then those assigned to no one;
    the `review` queue (reviewers) the images submitted for review. Its segmentation
    embedding and its boxes for click to box start computing in the background."""
    with ws.transaction() as conn:
        row = review.claim_next(conn, user=user, queue=queue,
                                lease=timedelta(minutes=settings.claim_minutes))
    if row is None:
        return Response(status_code=204)
    sessions.prepare_quietly(row)
    warm_boxes(sessions, detections, row)
    return ImagePublic.of(row)


@router.get("/{image_id}/neighbors", response_model=Neighbors)
def image_neighbors(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep,
                    filters: ListFilters, sort: Sort = "queue") -> Neighbors:
    """The image's place in the list the filters and sort make (as `GET /api/images`
    takes them), and the images before and after it: the editor's previous and next."""
    with ws.engine.connect() as conn:
        return Neighbors.model_validate(review.neighbours(
            conn, image_id=image_id, sort=sort, filters=filters))


@router.post("/assign", response_model=AssignResult)
def assign_images(body: AssignRequest, user: CurrentUser, ws: WorkspaceDep) -> AssignResult:
    """Assign images to people (reviewers): shared out in turn among `assignees`, in the
    order given; `[]` assigns them to no one. Each person's labeling queue hands them their
    images first, and nobody else's."""
    with ws.transaction() as conn:
        counts = review.assign(conn, user=user, image_ids=body.image_ids,
                               assignees=body.assignees)
    return AssignResult(assigned=sum(counts.values()), by_assignee=counts)


@router.get("/{image_id}", response_model=ImagePublic)
def get_image(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep) -> ImagePublic:
    with ws.engine.connect() as conn:
        return ImagePublic.of(review.get_image(conn, image_id))


@router.patch("/{image_id}", response_model=ImagePublic)
def update_image(image_id: ImageId, body: ImageUpdate, user: CurrentUser,
                 ws: WorkspaceDep) -> ImagePublic:
    """Set the split, the tags or the review state: an annotator submits an image for review
    (`submitted`); a reviewer marks it `done` (refused with 409 and the count while
    proposals are undecided, unless `pending` says how to decide them) or sends a submitted
    image back (`in_review`, with a `comment`)."""
    with ws.transaction() as conn:
        row = review.get_image(conn, image_id)
        if body.split is not None:
            row = review.set_split(conn, image_id=image_id,
                                   split=None if body.split == "unassigned" else body.split,
                                   user=user)
        if body.tags is not None:
            row = review.set_tags(conn, image_id=image_id, tags=body.tags, user=user)
        if body.review_state is not None:
            row = review.set_review_state(conn, image_id=image_id, state=body.review_state,
                                          user=user, pending=body.pending,
                                          comment=body.comment)
        return ImagePublic.of(row)


@router.post("/{image_id}/release", status_code=204, response_class=Response)
def release_image(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep) -> None:
    with ws.transaction() as conn:
        review.release(conn, image_id=image_id, user=user)


@router.get("/{image_id}/file", response_class=FileResponse,
            responses={200: {"content": {m: {} for m in _MEDIA.values()}}})
def image_file(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep) -> FileResponse:
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
        return FileResponse(ws.blobs.path(row.sha256, row.suffix), media_type=_MEDIA[row.suffix],
                            headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.get("/{image_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def thumbnail(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep, request: Request,
              size: Annotated[int, Query(ge=16, le=1024)] = 256,
              shapes: Annotated[bool, Query(description=(
                  "draw the labels (all but the rejected) over it, each class in its colour; "
                  "the grid asks with `v` = the image's `labels_version`, so a change of "
                  "labels is a new address"))] = False,
              v: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    """A JPEG of one of the cached sizes (128, 256, 512, 1024: the next one up from
    `size`) on its long side."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
        anns = review.list_annotations(conn, image_id=image_id) if shapes else []
        labels = repo.label_names(conn) if shapes else []
        given = repo.label_colors(conn) if shapes else {}
    data = request.app.state.thumbnails.get(row, size)
    if shapes:
        colours = {name: class_colour(i, given.get(name)) for i, name in enumerate(labels)}
        data = with_shapes(data, (row.width, row.height),
                           [a for a in anns if a.status != "rejected"], colours)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.get("/{image_id}/annotations", response_model=AnnotationsPublic)
def list_annotations(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep) -> AnnotationsPublic:
    with ws.engine.connect() as conn:
        anns = review.list_annotations(conn, image_id=image_id)
        return AnnotationsPublic(data=[AnnotationPublic.of(a, image_id) for a in anns],
                                 count=len(anns))


@router.post("/{image_id}/annotations", response_model=AnnotationPublic, status_code=201)
def create_annotation(image_id: ImageId, body: AnnotationCreate, user: CurrentUser,
                      ws: WorkspaceDep) -> AnnotationPublic:
    """Add an annotation. `source` is `human`, or the model a smart tool used, which must
    be one of this workspace's models at its version (provenance cannot be made up)."""
    if body.source != "human":
        known = {f"model:{m.name}@{m.version}" for m in list_models(ws.models_dir)}
        if body.source not in known:
            raise ValidationError(f"source {body.source!r} names no model of this workspace",
                                  hint="known: " + ", ".join(sorted(known)))
    with ws.transaction() as conn:
        ann = AnnotationRecord(label=body.label.strip(), shape=shape_from_dict(body.shape.model_dump()),
                               text=body.text, attributes=body.attributes, group=body.group,
                               status=body.status, source=body.source)
        created = review.create_annotation(conn, image_id=image_id, annotation=ann, user=user)
        return AnnotationPublic.of(created, image_id)


@router.post("/{image_id}/recognize", response_model=RecognizeResult)
def recognize(image_id: ImageId, body: RecognizeRequest, user: CurrentUser,
              ws: WorkspaceDep) -> RecognizeResult:
    """Read one quad (drawn or moved by a person) with the OCR model; nothing is stored,
    and no other annotation changes."""
    with ws.engine.connect() as conn:
        row = review.get_image(conn, image_id)
    text, score, source = recognize_quad(ws, row, body.points,
                                         model=body.model or ws.prelabeler or "ocr")
    return RecognizeResult(text=text, score=score, model=source)


@router.post("/{image_id}/annotations/bulk", response_model=BulkResult)
def bulk_status(image_id: ImageId, body: BulkStatus, user: CurrentUser, ws: WorkspaceDep) -> BulkResult:
    """Accept or reject all (or the listed) annotations of an image (reviewers)."""
    with ws.transaction() as conn:
        n = review.bulk_set_status(conn, image_id=image_id, status=body.status, user=user,
                                   annotation_ids=body.ids, only_status=body.only_status)
        return BulkResult(changed=n)


@router.post("/{image_id}/comments", response_model=AuditEntryPublic, status_code=201)
def add_comment(image_id: ImageId, body: CommentCreate, user: CurrentUser,
                ws: WorkspaceDep) -> AuditEntryPublic:
    """Comment on the image, or on one of its annotations (`annotation_id`); comments are
    part of the image's history (`GET .../audit`, action `comment`)."""
    with ws.transaction() as conn:
        return AuditEntryPublic(**review.add_comment(conn, image_id=image_id, text=body.text,
                                                     annotation_id=body.annotation_id,
                                                     user=user))


@router.get("/{image_id}/audit", response_model=list[AuditEntryPublic])
def audit(image_id: ImageId, user: CurrentUser, ws: WorkspaceDep) -> list[AuditEntryPublic]:
    """Who changed which annotation of this image, when, from what to what."""
    with ws.engine.connect() as conn:
        return [AuditEntryPublic(**e) for e in review.audit_for_image(conn, image_id=image_id)]
