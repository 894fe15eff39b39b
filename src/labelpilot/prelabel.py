"""Pre-labeling: run a model over the workspace's images and store its proposals.

Review semantics: a re-run never touches what a person accepted or edited, nor images
marked done; it replaces the earlier `predicted` proposals of an image, and proposes
nothing where a person's (or a rejected) annotation already covers the spot. Each image
is one transaction, recorded as finished in that same transaction: a cancelled or killed
job leaves no half-written image, and a resumed one skips the finished images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
from sqlalchemy import Connection, delete, select, update

from labelpilot.annotations import Annotation, Box, Shape, text_corners
from labelpilot.errors import LabelPilotError, ValidationError
from labelpilot.jobs import Cancelled, JobContext, register_job
from labelpilot.ocr_eval import _iou
from labelpilot.store import repo
from labelpilot.workspace import Workspace

OVERLAP_IOU = 0.5


def _corners(shape: Shape) -> list[tuple[float, float]]:
    try:
        return list(text_corners(shape))
    except ValidationError:
        return list(Box(*shape.bbox()).corners())


def load_image(ws: Workspace, row: Any) -> np.ndarray:
    """The stored image as a BGR array; LabelPilotError if it does not decode."""
    path = ws.blobs.path(row.sha256, row.suffix)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise LabelPilotError(f"image {row.id} ({row.file_name}) does not decode",
                              hint="re-import the file, then run autolabel again")
    return image


def load_rgb(ws: Workspace, row: Any) -> np.ndarray:
    """The stored image as a contiguous RGB array (what the segmenters take)."""
    return np.ascontiguousarray(load_image(ws, row)[..., ::-1])


def store_for_job(ctx: JobContext, image_id: int, proposals: list[Annotation],
                  totals: dict[str, int]) -> None:
    """One image of a pre-labeling job: its proposals stored and the image recorded as
    finished in one transaction, the counts added to `totals`; stops if cancelled."""
    with ctx.ws.transaction() as conn:
        counts = store_proposals(conn, image_id=image_id, proposals=proposals)
        ctx.record_in(conn, str(image_id))
    for k, v in counts.items():
        totals[k] += v
    if ctx.cancel_requested():
        raise Cancelled()


def store_proposals(conn: Connection, *, image_id: int, proposals: list[Annotation]
                    ) -> dict[str, int]:
    """Replace the image's `predicted` annotations by `proposals`, except where a
    person's or a rejected annotation covers the spot. Done images are left alone."""
    img = conn.execute(select(repo.images_t).where(repo.images_t.c.id == image_id)).first()
    if img is None or img.review_state == "done":
        return {"added": 0, "replaced": 0, "covered": 0, "skipped_done": int(img is not None)}
    existing = repo.annotations_for_images(conn, [image_id]).get(image_id, [])
    kept = [_corners(a.shape) for a in existing if a.status != "predicted"]
    replaced = conn.execute(delete(repo.annotations_t).where(
        repo.annotations_t.c.image_id == image_id,
        repo.annotations_t.c.status == "predicted")).rowcount
    fresh = [a for a in proposals
             if not any(_iou(_corners(a.shape), k) >= OVERLAP_IOU for k in kept)]
    if fresh:
        ids = repo.ensure_labels(conn, [a.label for a in fresh])
        when = repo.db_time(conn, repo.now())
        rows = []
        for a in fresh:
            shape, _ = a.shape.clip(img.width, img.height)
            a.shape = shape
            label, *rest = repo.annotation_fragment(a)
            rows.append((image_id, ids[label], *rest, 1, None, when, None, when))
        repo.insert_annotations(conn, rows)
    if img.review_state == "new":
        conn.execute(update(repo.images_t).where(repo.images_t.c.id == image_id)
                     .values(review_state="prelabeled"))
    return {"added": len(fresh), "replaced": int(replaced), "covered": len(proposals) - len(fresh),
            "skipped_done": 0}


def _targets(conn: Connection, which: str) -> list[Any]:
    t = repo.images_t
    q = select(t).order_by(t.c.id)
    if which == "new":
        q = q.where(t.c.review_state == "new")
    elif which == "all":
        q = q.where(t.c.review_state != "done")
    else:
        raise LabelPilotError(f"images must be 'new' or 'all', not {which!r}")
    return list(conn.execute(q))


class LabelMap:
    """Model class names -> project labels: `mapping` first (a class mapped to "" is
    dropped), then same-named project labels; the rest dropped, or added as new project
    labels (`unmapped="add"`)."""

    def __init__(self, model_labels: Sequence[str], project_labels: Sequence[str],
                 mapping: dict[str, str] | None = None, unmapped: str | None = None) -> None:
        mapping = dict(mapping or {})
        unknown_model = sorted(set(mapping) - set(model_labels))
        if unknown_model:
            raise LabelPilotError(
                f"--map names {', '.join(repr(x) for x in unknown_model)}, which the model does "
                f"not have", hint=f"the model's classes: {', '.join(model_labels)}")
        unknown_project = sorted(set(mapping.values()) - set(project_labels) - {""})
        if unknown_project:
            raise LabelPilotError(
                f"--map names the project label(s) {', '.join(repr(x) for x in unknown_project)}"
                ", which do not exist", hint="valid labels: " + (", ".join(project_labels)
                                                               or "(none yet)"))
        if unmapped not in (None, "drop", "add"):
            raise LabelPilotError(f"unmapped must be drop or add, not {unmapped!r}")
        # a project with no labels yet takes the model's
        self.unmapped = unmapped or ("add" if not project_labels else "drop")
        self.table = {m: mapping.get(m, m) for m in model_labels
                      if (m in mapping or m in project_labels or self.unmapped == "add")
                      and mapping.get(m, m)}
        self.dropped = 0

    def apply(self, anns: list[Annotation]) -> list[Annotation]:
        out = []
        for a in anns:
            target = self.table.get(a.label)
            if target is None:
                self.dropped += 1
                continue
            a.label = target
            out.append(a)
        return out


def plan_autolabel(ws: Workspace, *, model: str, images: str = "new", min_score: float = 0.0,
                   mapping: dict[str, str] | None = None, unmapped: str | None = None
                   ) -> tuple[str, dict[str, Any]]:
    """The job (kind, params) that pre-labels with `model`: `autolabel` for OCR models and
    detectors (a detector's class map is checked now, not in the job), `segment-everything`
    for interactive segmenters (masks for whole images)."""
    from labelpilot.models.registry import SEGMENTER_KINDS, get_manifest, load_model

    manifest = get_manifest(model, ws.models_dir)  # fails now on an unknown model
    params: dict[str, Any] = {"model": model, "images": images}
    if manifest.kind in SEGMENTER_KINDS:
        return "segment-everything", {**params, "min_quality": min_score}
    params["min_score"] = min_score
    if manifest.kind == "detect":
        with ws.engine.connect() as conn:
            LabelMap(load_model(model, ws.models_dir).spec.labels, repo.label_names(conn),
                     mapping, unmapped)
        if mapping:
            params["map"] = mapping
        if unmapped:
            params["unmapped"] = unmapped
    return "autolabel", params


@register_job("autolabel")
def run_autolabel(ctx: JobContext) -> dict[str, Any]:
    from labelpilot.models.registry import load_model

    p = ctx.params
    model = load_model(p.get("model", "ocr"), ctx.ws.models_dir, threads=1)
    min_score = float(p.get("min_score", 0.0))
    with ctx.ws.engine.connect() as conn:
        rows = _targets(conn, p.get("images", "new"))
        project_labels = repo.label_names(conn)
    label_map = None
    if model.spec.task == "detect":
        label_map = LabelMap(model.spec.labels, project_labels, p.get("map"), p.get("unmapped"))
    ctx.set_total(len(rows))
    todo = [r for r in rows if not ctx.is_finished(str(r.id))]
    totals = {"added": 0, "replaced": 0, "covered": 0, "skipped_done": 0}
    failed: list[str] = []

    def infer(row: Any) -> list[Annotation]:
        found: list[Annotation] = model.predict(load_image(ctx.ws, row), min_score=min_score)
        return label_map.apply(found) if label_map is not None else found

    # Two images in flight, one inference thread each (one ONNX thread per image runs
    # more images per second than two threads on one image); writes happen here, in order.
    with ThreadPoolExecutor(2) as pool:
        for row, future in _windowed(pool, infer, todo, ahead=3):
            try:
                proposals = future.result()
            except LabelPilotError as e:
                failed.append(e.message)
                continue
            store_for_job(ctx, row.id, proposals, totals)
    out = {"model": model.spec.source, "images": len(rows), **totals, "failed_images": failed}
    if label_map is not None:
        out["dropped_unmapped"] = label_map.dropped
    return out


def _windowed(pool: ThreadPoolExecutor, fn: Any, items: list[Any], ahead: int
              ) -> Iterator[tuple[Any, Future[Any]]]:
    """(item, future) in order, keeping `ahead` more submitted than consumed."""
    pending: deque[tuple[Any, Future[Any]]] = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def confirmed_labels(ws: Workspace, split: str | None) -> tuple[list[Any], dict[int, list[Annotation]]]:
    """The images of a split (all when None) and their accepted/edited annotations: the
    ground truth every evaluation reads."""
    with ws.engine.connect() as conn:
        t = repo.images_t
        q = select(t).order_by(t.c.id)
        if split is not None:
            q = q.where(t.c.split == split)
        rows = list(conn.execute(q))
        return rows, repo.annotations_for_images(conn, [r.id for r in rows],
                                                 ("accepted", "edited"))


def evaluate_detector(ws: Workspace, model: Any, split: str | None,
                      progress: Any = None, mapping: dict[str, str] | None = None
                      ) -> dict[str, Any]:
    """COCO-style mAP, per-class AP and accept rate of a detector against the accepted
    boxes (any region shape counts by its bounding box; COCO crowd regions are ignored).
    The model's classes are named as pre-labeling names them (`mapping`, then by name;
    the others dropped)."""
    from labelpilot.detect_eval import DetBox, GtBox, evaluate_detections

    with ws.engine.connect() as conn:
        names = LabelMap(model.spec.labels, repo.label_names(conn), mapping, "drop")
    rows, anns = confirmed_labels(ws, split)
    if not any(anns.get(r.id) for r in rows):
        where = f"the {split} split" if split else "the workspace"
        raise LabelPilotError(f"{where} has no accepted labels to evaluate against",
                              hint="accept or import ground truth first (e.g. --split test)")
    per_image = []
    for n, row in enumerate(rows, 1):
        gts = [GtBox(a.shape.bbox(), a.label, bool(a.attributes.get("iscrowd")))
               for a in anns.get(row.id, []) if a.shape.type != "point"]
        dets = [DetBox(a.shape.bbox(), a.label, float(a.score or 0.0))
                for a in names.apply(model.predict(load_image(ws, row)))]
        per_image.append((dets, gts))
        if progress:
            progress("eval", n, len(rows))
    result = evaluate_detections(per_image, accept_threshold=model.settings.score_threshold)
    return {"model": model.spec.source, "split": split, "images": len(rows), **result}


def evaluate_model(ws: Workspace, *, model_name: str, split: str | None,
                   progress: Any = None, mapping: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """Evaluate a model against the workspace's accepted labels: OCR text lines (see
    ocr_eval) or detection boxes (see detect_eval)."""
    from labelpilot.crops import rectify
    from labelpilot.models.registry import load_model
    from labelpilot.ocr_eval import GtLine, PredLine, evaluate

    model = load_model(model_name, ws.models_dir)
    if getattr(model, "spec", None) is not None and model.spec.task == "detect":
        return evaluate_detector(ws, model, split, progress, mapping)
    if mapping:
        raise LabelPilotError(f"--map applies to detectors; {model_name} is not one")
    rows, anns = confirmed_labels(ws, split)
    gts, preds, recs = [], [], []
    items = [(r, [a for a in anns.get(r.id, []) if a.text is not None]) for r in rows]
    items = [(r, lines) for r, lines in items if lines]
    if not items:
        where = f"the {split} split" if split else "the workspace"
        raise LabelPilotError(f"{where} has no accepted text lines to evaluate against",
                              hint="accept or import ground truth first (e.g. --split test)")
    for n, (row, lines) in enumerate(items, 1):
        image = load_image(ws, row)
        gt = [GtLine(_corners(a.shape), a.text or "") for a in lines]
        pred = [PredLine(_corners(a.shape), a.text or "") for a in model.predict(image)]
        # A person's quad starts where the text starts: no orientation guess needed.
        crops = [rectify(image, np.asarray(g.points)) for g in gt]
        recs.append([text for text, _ in model.recognize(crops)])
        gts.append(gt)
        preds.append(pred)
        if progress:
            progress("eval", n, len(items))
    result = evaluate(gts, preds, recs)
    return {"model": model.spec.source, "split": split, **result}
