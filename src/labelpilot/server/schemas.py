"""Request and response schemas, per resource: Base, Create, Update, Public, ListPublic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from labelpilot.annotations import Annotation, ReviewState
from labelpilot.store.tables import MAX_INT, UNRANKED

# Limits on every field a client writes (the README's reliability section lists them): a
# request within the body limit can still not store more than these.
MAX_TEXT = 10_000  # characters of a transcription
MAX_POINTS = 100_000  # vertices of a polygon, its holes included
MAX_HOLES = 1_000
MAX_RLE = 4 * 1024 * 1024  # characters of a mask's compressed RLE
MAX_ATTRIBUTES_BYTES = 64 * 1024  # a shape's attributes, as JSON
MAX_ATTRIBUTES_DEPTH = 8


def _utc(d: datetime) -> datetime:
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


# Times the store keeps in UTC (SQLite and PostgreSQL read them back without a zone), as
# RFC 3339 with their zone: a browser reads a time without one as its local time.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
_CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"} | {"\x7f"}


def _plain_text(value: str) -> str:
    """No control characters (they make XML exports ill-formed) and valid Unicode."""
    bad = next((c for c in value if c in _CONTROL), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} is not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate)") from None
    return value


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """Attributes nest at most MAX_ATTRIBUTES_DEPTH deep and take MAX_ATTRIBUTES_BYTES."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_ATTRIBUTES_DEPTH:
                raise ValueError(f"attributes nest deeper than {MAX_ATTRIBUTES_DEPTH} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children)
        elif isinstance(node, str):
            _plain_text(node)
    try:
        size = len(orjson.dumps(value))
    except TypeError as e:
        raise ValueError(f"attributes must be plain JSON ({e})") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes take {size:,} bytes as JSON, over the limit of "
                         f"{MAX_ATTRIBUTES_BYTES:,}")
    return value


def _bounded_shape(shape: Any) -> None:
    if isinstance(shape, BoxShape):
        x1, y1, x2, y2 = shape.xyxy
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"the box {shape.xyxy} has no area: x2 must exceed x1 and y2 y1")
    elif isinstance(shape, PolygonShape):
        if len(shape.holes) > MAX_HOLES:
            raise ValueError(f"the polygon has {len(shape.holes):,} holes, over the limit of "
                             f"{MAX_HOLES:,}")
        total = len(shape.points) + sum(len(h) for h in shape.holes)
        if total > MAX_POINTS:
            raise ValueError(f"the polygon has {total:,} vertices with its holes, over the "
                             f"limit of {MAX_POINTS:,}")
    elif isinstance(shape, PolylineShape) and len(shape.points) > MAX_POINTS:
        raise ValueError(f"the polyline has {len(shape.points):,} vertices, over the limit of "
                         f"{MAX_POINTS:,}")
    elif isinstance(shape, MaskShape) and len(shape.rle) > MAX_RLE:
        raise ValueError(f"the mask's RLE has {len(shape.rle):,} characters, over the limit "
                         f"of {MAX_RLE:,}")


class _InputLimits(BaseModel):
    """What a client writes stays within the field limits (responses are not checked:
    imports may hold more)."""

    @model_validator(mode="after")
    def _within_limits(self) -> Any:
        label, shape = getattr(self, "label", None), getattr(self, "shape", None)
        if label is not None:
            _plain_text(label)
        if shape is not None:
            _bounded_shape(shape)
        return self


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_plain_text)]
Attributes = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
DbInt = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]
Coord = Annotated[float, Field(allow_inf_nan=False)]
XY = Annotated[list[Coord], Field(min_length=2, max_length=2)]


class BoxShape(BaseModel):
    type: Literal["box"]
    xyxy: Annotated[list[Coord], Field(min_length=4, max_length=4)]


class RotatedBoxShape(BaseModel):
    type: Literal["rotated_box"]
    cxcywha: Annotated[list[Coord], Field(min_length=5, max_length=5)]


class QuadShape(BaseModel):
    type: Literal["quad"]
    points: Annotated[list[XY], Field(min_length=4, max_length=4)]


class PolygonShape(BaseModel):
    type: Literal["polygon"]
    points: Annotated[list[XY], Field(min_length=3)]
    holes: list[Annotated[list[XY], Field(min_length=3)]] = []


class MaskShape(BaseModel):
    type: Literal["mask"]
    rle: str
    size: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]


class PointShape(BaseModel):
    type: Literal["point"]
    xy: XY


class PolylineShape(BaseModel):
    type: Literal["polyline"]
    points: Annotated[list[XY], Field(min_length=2)]


Shape = Annotated[BoxShape | RotatedBoxShape | QuadShape | PolygonShape | MaskShape | PointShape
                  | PolylineShape, Field(discriminator="type")]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Status = Literal["predicted", "accepted", "edited", "rejected"]


class AnnotationBase(BaseModel):
    label: Label
    shape: Shape
    text: str | None = None
    attributes: dict[str, Any] = {}
    group: int | None = None


class AnnotationCreate(AnnotationBase, _InputLimits):
    model_config = ConfigDict(extra="forbid")

    text: Text | None = None
    attributes: Attributes = {}
    group: DbInt | None = None
    status: Status = "accepted"
    source: Annotated[str, Field(pattern=r"^(human|model:[^@\s]+@\S+)$", description=(
        "who drew it: `human`, or the model a smart tool used (`model:<name>@<version>`)"
    ))] = "human"


class CombineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=0, le=MAX_INT, description="the version you read")]
    other: DbInt = Field(description="the annotation to merge in or cut out")
    other_version: Annotated[int, Field(ge=0, le=MAX_INT)]
    op: Literal["union", "subtract"]


class AnnotationUpdate(_InputLimits):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=0, le=MAX_INT,
                                  description="the version you read; a stale one gets 409")]
    label: Label | None = None
    shape: Shape | None = None
    text: Text | None = None
    attributes: Attributes | None = None
    group: DbInt | None = None
    status: Status | None = None
    score: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(None, description=(
        "the confidence of a model's reading sent with the `text` it read (re-recognize); "
        "only together with `text`"))

    @model_validator(mode="after")
    def _score_with_text(self) -> AnnotationUpdate:
        if "score" in self.model_fields_set and "text" not in self.model_fields_set:
            raise ValueError("a score is sent only with the text it scores")
        return self


class AnnotationPublic(AnnotationBase):
    id: int
    image_id: int
    score: float | None
    source: str
    status: Status
    version: int
    created_by: str | None
    created_at: UtcDatetime | None
    updated_by: str | None
    updated_at: UtcDatetime | None

    @classmethod
    def of(cls, a: Annotation, image_id: int) -> AnnotationPublic:
        return cls.model_validate({
            "id": a.id, "image_id": image_id, "label": a.label, "shape": a.shape.to_dict(),
            "text": a.text, "attributes": a.attributes, "group": a.group, "score": a.score,
            "source": a.source, "status": a.status, "version": a.version,
            "created_by": a.created_by, "created_at": a.created_at,
            "updated_by": a.updated_by, "updated_at": a.updated_at})


class AnnotationsPublic(BaseModel):
    data: list[AnnotationPublic]
    count: int


class BulkStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["accepted", "rejected"]
    ids: Annotated[list[DbInt], Field(max_length=100_000)] | None = None
    only_status: Status | None = None


class BulkResult(BaseModel):
    changed: int


class ConflictDetail(BaseModel):
    detail: str
    current: AnnotationPublic | None


class ImagePublic(BaseModel):
    id: int
    file_name: str
    width: int
    height: int
    split: Literal["train", "val", "test"] | None
    review_state: ReviewState
    claimed_by: str | None = None
    claim_expires_at: UtcDatetime | None = None
    assignee: str | None = Field(None, description="the person the image is for")
    tags: list[str] = Field(default_factory=list, description="the image's classification tags")
    annotations: int = 0
    labels_version: str | None = Field(None, description=(
        "changes whenever one of its annotations does (in lists): the grid's thumbnail "
        "with shapes is asked for under it"))
    created_at: UtcDatetime
    queue_rank: int | None = Field(None, description=(
        "its place in the labeling queue chosen by active learning (1 first); none when "
        "no selection ranked it"))
    queue_reason: dict[str, Any] | None = Field(None, description=(
        "why the selection chose it: strategy, score, reason, model"))

    @classmethod
    def of(cls, r: Any, annotations: int = 0, labels_version: str | None = None) -> ImagePublic:
        ranked = r.queue_rank != UNRANKED
        return cls(id=r.id, file_name=r.file_name, width=r.width, height=r.height, split=r.split,
                   review_state=r.review_state, claimed_by=r.claimed_by,
                   claim_expires_at=r.claim_expires_at, assignee=r.assignee,
                   tags=orjson.loads(r.tags) if r.tags else [], annotations=annotations,
                   labels_version=labels_version, created_at=r.created_at,
                   queue_rank=r.queue_rank if ranked else None,
                   queue_reason=orjson.loads(r.queue_reason) if ranked and r.queue_reason
                   else None)


class ImagesPublic(BaseModel):
    data: list[ImagePublic]
    count: int


class Neighbors(BaseModel):
    position: int | None = Field(description="1-based place in the list; null when the "
                                 "image is not in it (any more)")
    count: int = Field(description="images in the list")
    previous: int | None = Field(description="the image before it, null at the start")
    next: int | None = Field(description="the image after it, null at the end")


class ImageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review_state: ReviewState | None = Field(None, description=(
        "`submitted`: an annotator hands the image to review; `done`: a reviewer closes it "
        "(every proposal decided, see `pending`); `in_review` from `submitted`: sent back to "
        "the annotator (a `comment` says why)"))
    split: Literal["train", "val", "test", "unassigned"] | None = None
    pending: Literal["accept", "reject"] | None = Field(None, description=(
        "with review_state `done`: decide the proposals still undecided this way first "
        "(without it, `done` is refused while any is left)"))
    comment: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = Field(
        None, description="why: required when sending a submitted image back")
    tags: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        None, max_length=200, description="the image's classification tags (the whole list)")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_ids: list[DbInt] = Field(max_length=1_000_000, description="the images, in order")
    assignees: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        max_length=1000, description="the people to share them among in turn; [] assigns "
                                     "them to no one")


class AssignResult(BaseModel):
    assigned: int
    by_assignee: dict[str, int] = Field(description="person (or @unassigned) -> images")


class UploadResult(ImagePublic):
    created: bool


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    annotation_id: DbInt | None = Field(None, description="the annotation it is about, if one")


class AuditEntryPublic(BaseModel):
    id: int
    annotation_id: int | None
    action: str
    username: str | None
    at: UtcDatetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: UtcDatetime


Role = Literal["annotator", "reviewer", "admin"]


class UserPublic(BaseModel):
    username: str
    role: Role
    active: bool
    must_change_password: bool = Field(False, description=(
        "the password was chosen by someone else (first start, an admin's reset): the user "
        "changes it before anything else"))


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(max_length=200)]
    new_password: Annotated[str, Field(min_length=8, max_length=200)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,100}$")]
    password: Annotated[str, Field(min_length=8, max_length=200)]
    role: Role


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    active: bool | None = None
    password: Annotated[str, Field(min_length=8, max_length=200)] | None = Field(None, description=(
        "a new password for the user: they must change it at their next sign-in, unless "
        "must_change_password is false"))
    must_change_password: bool | None = None


class LoopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    every: Annotated[int, Field(ge=1, le=1_000_000, description=(
        "newly accepted labels in the train split between two trainings"))] = 50
    minutes: Annotated[float, Field(gt=0, le=24 * 60, description="each training's budget")] = 5.0


class ProjectPublic(BaseModel):
    name: str
    task: str
    labels: list[str]
    label_colors: dict[str, str] = Field(default_factory=dict,
                                         description="label -> #rrggbb, for those given one")
    label_attributes: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="label -> the attributes its shapes carry")
    label_keypoints: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="label -> its keypoint schema, COCO's way: "
        "{keypoints: [names], skeleton: [[i, j], ...] (1-based)}")
    tags: list[str] = Field(default_factory=list, description="the tags images carry")
    stats: dict[str, Any]
    prelabeler: str | None = Field(None, description=(
        "the model autolabel and the smart tools use unless told otherwise (the closed "
        "loop promotes its better models here)"))
    loop: LoopSettings = Field(default_factory=lambda: LoopSettings(), description=(
        "the closed loop: train after every `every` newly accepted labels, promote a "
        "better model"))
    text_lines: Literal["detect", "whole-image"] = Field("detect", description=(
        "OCR projects: how pre-labeling finds text lines: the text detector (detect), or "
        "each image read whole as one cropped line (whole-image)"))
    executors: list[Literal["local", "ray"]] = Field(["local"], description=(
        "where this server can run the models of pre-labeling, selection and optimization "
        "jobs: local (in the server), ray (the Ray cluster it is set up for)"))
    executor: Literal["local", "ray"] = Field("local", description=(
        "where they run unless a request says (LABELPILOT_EXECUTOR)"))


class LabelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label | None = Field(None, description="a new name")
    merge_into: Label | None = Field(None, description="move its annotations to this class "
                                                       "and remove it")
    color: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    attributes: list[dict[str, Any]] | None = Field(None, max_length=50, description=(
        "the attributes its shapes carry: [{name, type: checkbox|select|text|number, "
        "values (a select's), min, max (a number's), default}]; [] removes them"))


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    add_labels: list[Label] | None = None
    prelabeler: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="the default model for autolabel and the smart tools")
    loop: LoopSettings | None = None
    text_lines: Literal["detect", "whole-image"] | None = Field(
        None, description="OCR projects: how pre-labeling finds text lines (see "
        "ProjectPublic)")


class SplitAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ratios: dict[Literal["train", "val", "test"], Annotated[float, Field(ge=0, le=1e6)]] | None = (
        Field(None, description="share the images out, e.g. {\"train\": 0.8, \"val\": 0.1, "
                                "\"test\": 0.1} (normalised)"))
    split: Literal["train", "val", "test", "unassigned"] | None = Field(
        None, description="or put them all in this split")
    image_ids: Annotated[list[DbInt], Field(max_length=1_000_000)] | None = Field(
        None, description="the images (a selection); all when absent")
    only_unassigned: bool = False
    stratify: bool = True
    seed: DbInt = 0


class SplitResult(BaseModel):
    assigned: int
    by_split: dict[str, int]
    by_class: dict[str, dict[str, int]] = Field(description="per class, its images per split")


class Readiness(BaseModel):
    ready: bool
    reason: str | None = Field(description="why it cannot start now")
    images: int | None = Field(None, description="the images it would work on")
    warnings: list[str] = Field(default_factory=list, description=(
        "what to know before it starts (it can): e.g. classes with too few examples"))


class FormatPublic(BaseModel):
    name: str
    description: str


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str
    status: Literal["accepted", "all"] = "accepted"
    split: Literal["train", "val", "test"] | None = None
    include_images: bool = True


class RecognizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Annotated[list[XY], Field(min_length=4, max_length=4,
                                      description="the quad's corners, reading order")]
    model: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="the OCR model (default: the project's pre-labeler)")


class RecognizeResult(BaseModel):
    text: str
    score: float
    model: str


class AutolabelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is said, not ignored

    model: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="default: the project's pre-labeler (see GET /api/project)")
    images: Literal["new", "all"] = "new"
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.0
    map: dict[str, str] | None = Field(None, description="detectors: model class -> project label")
    unmapped: Literal["drop", "add"] | None = Field(
        None, description="detectors: classes neither mapped nor named like a project label")
    lines: Literal["detect", "whole-image"] | None = Field(
        None, description="OCR models: find the text lines (detect) or read each image as "
        "one cropped line (whole-image); default: the project's text_lines")
    executor: Literal["local", "ray"] | None = Field(
        None, description="where the models run: in the server (local) or on the Ray cluster "
        "the server is set up for (LABELPILOT_RAY_ADDRESS); default: the server's "
        "LABELPILOT_EXECUTOR")


class SelectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is said, not ignored

    strategy: Literal["uncertainty", "diversity", "hybrid", "random"] = "hybrid"
    budget: Annotated[int, Field(ge=1, le=100_000, description="how many images to put "
                                 "first in the labeling queue")]
    model: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="the model that scores (default: the project's pre-labeler)")
    split: Literal["train", "val", "test", "unassigned"] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31)] = 0
    executor: Literal["local", "ray"] | None = Field(
        None, description="where the model scores the images: in the server (local) or on "
        "the Ray cluster the server is set up for; default: the server's LABELPILOT_EXECUTOR")


class TrainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["ocr-rec", "detect"] = "ocr-rec"
    init: Literal["pretrained", "scratch"] = "pretrained"
    epochs: Annotated[int, Field(ge=1, le=1000)] | None = None
    minutes: Annotated[float, Field(gt=0, le=24 * 60)] | None = None
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    # the detector to start from (detect only): an installed model with a YOLOX head, or
    # several, comma-separated: each is fine-tuned and the best on held-out images kept
    base: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,7}$")
                    ] | None = None
    # large images with small objects (detect only): train, then detect, in tiles
    tile: Annotated[int, Field(ge=64, le=16384)] | Literal["auto"] | None = None
    overlap: Annotated[float, Field(ge=0, lt=0.9)] = 0.2


class OptimizeCreate(BaseModel):
    """What `labelpilot models optimize` takes (see its --help)."""
    model_config = ConfigDict(extra="forbid")

    int8: bool = True
    fp16: bool = False
    device: Literal["cpu", "cuda", "tensorrt"] = "cpu"
    calibrate_on: Literal["train", "val"] = "train"
    images: Annotated[int, Field(ge=1, le=10_000)] = 64
    method: Literal["minmax", "entropy", "percentile"] = "percentile"
    max_loss: Annotated[float, Field(ge=0, le=100)] = 1.0
    min_speedup: Annotated[float, Field(gt=0, le=100)] = 1.5
    prune: bool = True  # OCR: also try the recognizer pruned to the characters in use
    only: Literal["det", "rec", "model"] | None = None  # one file only
    executor: Literal["local", "ray"] | None = Field(
        None, description="where the tries are scored (they are timed in the server): in "
        "the server (local) or on its Ray cluster; default: the server's LABELPILOT_EXECUTOR")


class JobPublic(BaseModel):
    id: int
    kind: str
    params: dict[str, Any]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    total: int
    done: int
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    created_by: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    rate: float | None
    eta_s: float | None


class Message(BaseModel):
    detail: str


class ErrorDetail(BaseModel):
    """Every error: what was wrong (a sentence, or the invalid fields) and what to do."""

    detail: str | list[dict[str, Any]]
    hint: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDetail, "description": "The request cannot be carried out as asked"},
    401: {"model": ErrorDetail, "description": "Not signed in, or the token is not valid"},
    403: {"model": ErrorDetail, "description": "The user's role does not allow this"},
    404: {"model": ErrorDetail, "description": "No such resource"},
    409: {"model": ErrorDetail, "description": "The current state does not allow it: a stale "
                                               "edit, a name already taken, the last admin"},
    413: {"model": ErrorDetail, "description": "Over the size or pixel limit"},
    415: {"model": ErrorDetail, "description": "Not a supported image"},
    422: {"model": ErrorDetail, "description": "Invalid fields or values"},
    429: {"model": ErrorDetail, "description": "Too many failed sign-ins: wait Retry-After"},
    503: {"model": ErrorDetail, "description": "Busy or not ready: try again later"},
    507: {"model": ErrorDetail, "description": "The server's disk is full"},
}


class ModelPublic(BaseModel):
    name: str
    version: str
    task: str
    kind: str
    builtin: bool
    description: str
    interactive: bool = Field(description="an interactive segmenter (click/box -> mask)")
    default: bool = Field(description="the segmenter used when a request names none")
    classes: list[str] = Field(default_factory=list,
                               description="a detector's class names (for a class map)")
    trainable: bool = Field(False, description="a detector that custom auto-label can start "
                                               "from (`base` of POST /api/train)")
    metrics: dict[str, Any] = Field(default_factory=dict,
                                    description="what the model measured (trained models: "
                                                "test-split figures, per class)")
    variants: dict[str, Any] = Field(default_factory=dict,
                                     description="optimized variants kept by the accuracy "
                                                 "gate (int8-cpu, ...): precision, device, "
                                                 "speed-up, metric before and after, size")


class ClickIn(BaseModel):
    x: Coord
    y: Coord
    positive: bool = True


class SegmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="an interactive segmenter (`labelpilot models "
                                                "list`); default: the best one installed")
    clicks: Annotated[list[ClickIn], Field(max_length=200)] = []
    box: Annotated[list[Coord], Field(min_length=4, max_length=4)] | None = None
    previous: MaskShape | None = Field(None, description="the mask being corrected")
    output: Literal["polygon", "mask"] = "polygon"
    tolerance: Annotated[float, Field(ge=0, le=50)] = 1.0


class ClickBoxRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clicks: Annotated[list[ClickIn], Field(min_length=1, max_length=50)]
    detector: str | None = Field(None, description="default: the first detector installed")
    segmenter: str | None = Field(None, description="used when no detection holds the clicks")


class ClickBoxResult(BaseModel):
    box: Annotated[list[float], Field(min_length=4, max_length=4)]
    label: str | None = Field(description="the detector's class, when a detection answered")
    score: float | None = Field(description="the detector's score, or the segmenter's "
                                "estimate of the mask's IoU; null when it has none")
    source: str
    method: Literal["detector", "mask"]


class SegmentProposal(BaseModel):
    quality: float | None = Field(description="the model's estimate of the mask's IoU; null "
                                  "when it has none (the graph cut)")
    area: int
    rle: str = Field(description="the mask as COCO compressed RLE (send it back as `previous` "
                                 "with the next click)")
    shapes: list[Shape] = Field(description="polygons (one per part, holes kept) or one mask")


class SegmentResult(BaseModel):
    model: str
    source: str
    proposals: list[SegmentProposal]
    warnings: list[str]
    embed_ms: float
    decode_ms: float
    cached: str
