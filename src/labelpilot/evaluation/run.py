"""Evaluating a workspace's model against its accepted labels: the OCR metrics
(evaluation.ocr) or COCO detection metrics (evaluation.detect), model by model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any

import numpy as np

from labelpilot.annotations import object_boxes, region_corners
from labelpilot.errors import LabelPilotError
from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections, mistakes
from labelpilot.evaluation.ocr import GtLine, PredLine, evaluate
from labelpilot.executors import (
    ExecutorSpec,
    Failure,
    ImageRef,
    open_executor,
    plan_candidate,
    plan_work,
)
from labelpilot.executors.work import shown_detections
from labelpilot.geometry.crops import rectify
from labelpilot.models.detect import check_tiling
from labelpilot.models.registry import get_manifest, load_detector, load_ocr
from labelpilot.proposals import LabelMap
from labelpilot.store import repo
from labelpilot.workspace import Workspace

if TYPE_CHECKING:
    from labelpilot.models.detect import DetectorModel, Tiling


# The COCO protocol: every detection scored at least this (up to the model's
# max_detections, 100, per image) counts for mAP, as papers and pycocotools report it.
EVAL_MIN_SCORE = 0.001


def evaluate_detector(ws: Workspace, model: DetectorModel, split: str | None,
                      progress: Any = None, mapping: dict[str, str] | None = None,
                      tiling: Tiling | None = None, *, name: str | None = None,
                      executor: ExecutorSpec | None = None) -> dict[str, Any]:
    """mAP by the COCO protocol (detections down to EVAL_MIN_SCORE, 100 per image),
    per-class AP, and the accept rate of what the model shows (its display thresholds)
    against the accepted boxes (any region shape counts by its bounding box; COCO crowd
    regions are ignored). The model's classes are named as pre-labeling names them
    (`mapping`, then by name; the others dropped). With `name` (the model's name in the
    workspace) or `executor` (a candidate's files, see `executors.plan_candidate`), the
    images run on `executor`; else here, on `model` itself."""
    with ws.engine.connect() as conn:
        names = LabelMap(model.spec.labels, repo.label_names(conn), mapping, "drop")
        rows, anns = repo.confirmed_labels(conn, split)
    if not any(anns.get(r.id) for r in rows):
        where = f"the {split} split" if split else "the workspace"
        raise LabelPilotError(f"{where} has no accepted labels to evaluate against",
                              hint="accept or import ground truth first (e.g. --split test)")
    tiling = tiling or model.default_tiling
    per_image = []
    for n, (ref, found) in enumerate(_detections(ws, model, name, executor, rows, tiling), 1):
        if isinstance(found, Failure):
            raise LabelPilotError(found.message, hint="evaluation needs every image")
        gts = [GtBox(box, a.label, bool(a.attributes.get("iscrowd")))
               for box, a in object_boxes(anns.get(ref.id, []))]
        dets = []
        for a, shown in found:  # shown: by the model's own class name
            score = float(a.score or 0.0)
            dets += [DetBox(m.shape.bbox(), m.label, score, shown) for m in names.apply([a])]
        per_image.append((dets, gts))
        if progress:
            progress("eval", n, len(rows))
    result = evaluate_detections(per_image)
    return {"model": model.spec.source, "split": split, "images": len(rows), **result,
            "examples": worst_images(rows, per_image),
            "tiling": None if tiling is None else {"tile": tiling.size, "overlap": tiling.overlap},
            "protocol": f"mAP: COCO (detections scored >= {EVAL_MIN_SCORE}, up to "
                        f"{model.settings.max_detections} per image); accept rate: the "
                        f"proposals the model shows (score >= {model.settings.score_threshold}"
                        f"{' or its class threshold' if model.settings.class_thresholds else ''})"}


def _detections(ws: Workspace, model: DetectorModel, name: str | None,
                executor: ExecutorSpec | None, rows: list[Any], tiling: Tiling | None
                ) -> Iterator[tuple[Any, Any]]:
    """(image, [(detection, shown)]) for each row, in order."""
    if name is None and executor is None:  # a candidate being scored, here
        for row in rows:
            yield row, shown_detections(model, ws.blobs.load_image(row),
                                        score_threshold=EVAL_MIN_SCORE, tiling=tiling)
        return
    options = {"score_threshold": EVAL_MIN_SCORE, "tile": tiling.size if tiling else None,
               "overlap": tiling.overlap if tiling else 0.2}
    work = (plan_work(ws, name, "eval-detect", **options) if name is not None
            else plan_candidate(ws, model.manifest, "eval-detect", **options))
    with closing(open_executor(executor or ExecutorSpec()).map(
            work, [ImageRef.of(r) for r in rows])) as results:
        yield from results


def worst_images(rows: list[Any], per_image: list[tuple[list[DetBox], list[GtBox]]],
                 limit: int = 8) -> list[dict[str, Any]]:
    """The images where the shown proposals need the most fixing (misses and false alarms
    at IoU 0.5, see evaluation.detect.mistakes), worst first: what a training report
    shows as examples, each with its boxes."""
    out = []
    for row, (dets, gts) in zip(rows, per_image, strict=True):
        missed, false = mistakes(dets, gts)
        if missed or false:
            out.append({"image_id": row.id, "file_name": row.file_name,
                        "misses": [{"label": g.label, "box": [round(v, 1) for v in g.box]}
                                   for g in missed],
                        "false_alarms": [{"label": d.label, "score": round(d.score, 3),
                                          "box": [round(v, 1) for v in d.box]}
                                         for d in false]})
    out.sort(key=lambda e: -(len(e["misses"]) + len(e["false_alarms"])))
    return out[:limit]


def text_truth(anns: list[Any]) -> list[GtLine]:
    """The true text lines among an image's accepted annotations (those with a text)."""
    return [GtLine(region_corners(a.shape), a.text or "") for a in anns if a.text is not None]


def truth_crops(image: np.ndarray, gt: list[GtLine]) -> list[np.ndarray]:
    """The crops of the true lines' quads, upright: a person's quad starts where the text
    starts, so no orientation guess is needed."""
    return [rectify(image, np.asarray(g.points)) for g in gt]


def evaluate_model(ws: Workspace, *, model_name: str, split: str | None,
                   progress: Any = None, mapping: dict[str, str] | None = None,
                   tile: int | None = None, overlap: float = 0.2,
                   executor: ExecutorSpec | None = None) -> dict[str, Any]:
    """Evaluate a model against the workspace's accepted labels: OCR text lines (see
    evaluation.ocr) or detection boxes (see evaluation.detect); the images run on
    `executor` (default: here)."""
    kind = get_manifest(model_name, ws.models_dir).kind
    if tile is not None:
        with ws.engine.connect() as conn:
            rows = repo.list_images(conn, split)
        tiling = check_tiling(tile, overlap, kind, [max(r.width, r.height) for r in rows])
    else:
        tiling = None
    if kind == "detect":
        # its classes and settings here; threads=1: the local worker's own cached instance
        detector = load_detector(model_name, ws.models_dir, threads=1)
        return evaluate_detector(ws, detector, split, progress, mapping, tiling,
                                 name=model_name, executor=executor)
    if mapping:
        raise LabelPilotError(f"--map applies to detectors; {model_name} is not one")
    model = load_ocr(model_name, ws.models_dir, threads=1)  # its source; the worker's copy
    with ws.engine.connect() as conn:
        rows, anns = repo.confirmed_labels(conn, split)
    gts, preds, recs = [], [], []
    items = [(r, [a for a in anns.get(r.id, []) if a.text is not None]) for r in rows]
    items = [(r, lines) for r, lines in items if lines]
    if not items:
        where = f"the {split} split" if split else "the workspace"
        raise LabelPilotError(f"{where} has no accepted text lines to evaluate against",
                              hint="accept or import ground truth first (e.g. --split test)")
    refs = []
    for row, lines in items:
        gt = text_truth(lines)
        gts.append(gt)
        refs.append(ImageRef.of(row, [g.points for g in gt]))
    work = plan_work(ws, model_name, "eval-ocr")
    with closing(open_executor(executor or ExecutorSpec()).map(work, refs)) as results:
        for n, (_, found) in enumerate(results, 1):
            if isinstance(found, Failure):
                raise LabelPilotError(found.message, hint="evaluation needs every image")
            found_lines, texts = found
            preds.append([PredLine(region_corners(a.shape), a.text or "") for a in found_lines])
            recs.append(texts)
            if progress:
                progress("eval", n, len(items))
    result = evaluate(gts, preds, recs)
    return {"model": model.spec.source, "split": split, **result}
