"""The `autolabel` job: a model pre-labels the workspace's images; its proposals are stored
with the re-run rules of `labelpilot.proposals`, one image per transaction."""

from __future__ import annotations

from contextlib import closing
from functools import partial
from typing import Any

from labelpilot.annotations import Annotation
from labelpilot.errors import LabelPilotError, ValidationError
from labelpilot.executors import (
    Batches,
    ExecutorSpec,
    Failure,
    ImageRef,
    open_executor,
    plan_work,
)
from labelpilot.jobs.engine import JobContext
from labelpilot.models.detect import check_tiling
from labelpilot.models.registry import SEGMENTER_KINDS, get_manifest, load_detector, load_predictor
from labelpilot.proposals import LabelMap, prelabel_targets, store_proposals, store_proposals_of
from labelpilot.store import repo
from labelpilot.workspace import TEXT_LINES, Workspace

TOTALS = ("added", "replaced", "covered", "skipped_done")


def store_image_proposals(ctx: JobContext, image_id: int, proposals: list[Annotation]
                          ) -> dict[str, int]:
    """One image of a pre-labeling job: its proposals stored and the image recorded as
    finished in one transaction; stops if the job was cancelled."""
    return ctx.commit_item(str(image_id), lambda conn: store_proposals(
        conn, image_id=image_id, proposals=proposals))


def add_counts(totals: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        totals[k] += v


class ProposalWriter:
    """The one writer of a pre-labeling job: images' proposals stored as they arrive, a
    few images per transaction (`JobContext.commit_batch`: their proposals and their job
    items together, in a few statements for all of them: `store_proposals_of`), committed
    when `batch` images wait or the oldest waited `wait_s` (`executors.Batches`)."""

    def __init__(self, ctx: JobContext, *, batch: int = 16, wait_s: float = 0.25) -> None:
        self.ctx = ctx
        self.totals = dict.fromkeys(TOTALS, 0)
        self._batches: Batches[tuple[int, list[Annotation]]] = Batches(
            self._write, size=batch, wait_s=wait_s)

    def add(self, image_id: int, proposals: list[Annotation]) -> None:
        self._batches.add((image_id, proposals))

    def flush(self) -> None:
        self._batches.flush()

    def _write(self, pending: list[tuple[int, list[Annotation]]]) -> None:
        for counts in self.ctx.commit_batch([str(image_id) for image_id, _ in pending],
                                            partial(store_proposals_of, items=pending)):
            add_counts(self.totals, counts)


def plan_autolabel(ws: Workspace, *, model: str | None, images: str = "new",
                   min_score: float = 0.0,
                   mapping: dict[str, str] | None = None, unmapped: str | None = None,
                   tile: int | None = None, overlap: float = 0.2, lines: str | None = None,
                   executor: ExecutorSpec | None = None) -> tuple[str, dict[str, Any]]:
    """The job (kind, params) that pre-labels with `model`: `autolabel` for OCR models and
    detectors (a detector's class map is checked now, not in the job), `segment-everything`
    for interactive segmenters (masks for whole images). `lines` (OCR models): `detect`
    finds the text lines, `whole-image` reads each image as one line; default: the
    project's `text_lines`. `model` None: the project's pre-labeler. `executor`: where the
    inference runs (default: in the job's process)."""
    model = model or ws.prelabeler
    if model is None:
        raise LabelPilotError("name the model to pre-label with (--model, or `model` in the "
                              "API)", hint="labelpilot models list DIR shows the workspace's "
                              "models; or make one the project's pre-labeler "
                              "(PATCH /api/project)")
    manifest = get_manifest(model, ws.models_dir)  # fails now on an unknown model
    if lines is not None and lines not in TEXT_LINES:
        raise ValidationError(f"lines must be one of {', '.join(TEXT_LINES)}, not {lines!r}")
    if lines is not None and manifest.kind != "ocr":
        raise ValidationError(f"{model} is a {manifest.kind} model; choosing how text lines "
                              "are found (lines) is for OCR models")
    params: dict[str, Any] = {"model": model, "images": images}
    if manifest.kind in SEGMENTER_KINDS:
        if executor is not None and executor.kind != "local":
            raise ValidationError(f"{model} is a segmenter: segment everything runs in the "
                                  "job's process", hint="leave out --executor ray, or "
                                  "pre-label with an OCR model or a detector")
        return "segment-everything", {**params, "min_quality": min_score}
    if executor is not None and executor.params():
        params["executor"] = executor.params()
    params["min_score"] = min_score
    if manifest.kind == "ocr":
        params["lines"] = lines or ws.config.text_lines
    if tile is not None:
        with ws.engine.connect() as conn:
            sides = [max(r.width, r.height) for r in prelabel_targets(conn, images)]
        check_tiling(tile, overlap, manifest.kind, sides)
        params.update(tile=int(tile), overlap=float(overlap))
    if manifest.kind == "detect":
        with ws.engine.connect() as conn:
            LabelMap(load_detector(model, ws.models_dir).spec.labels, repo.label_names(conn),
                     mapping, unmapped)
        if mapping:
            params["map"] = mapping
        if unmapped:
            params["unmapped"] = unmapped
    return "autolabel", params


def run_autolabel(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    name = p.get("model", "ocr")
    model = load_predictor(name, ctx.ws.models_dir, threads=1)  # its classes, its source
    with ctx.ws.engine.connect() as conn:
        rows = prelabel_targets(conn, p.get("images", "new"))
        project_labels = repo.label_names(conn)
    label_map = None
    if model.spec.task == "detect":
        label_map = LabelMap(model.spec.labels, project_labels, p.get("map"), p.get("unmapped"))
    ctx.set_items(str(r.id) for r in rows)
    todo = [r for r in rows if not ctx.is_finished(str(r.id))]
    writer = ProposalWriter(ctx)
    failed: list[str] = []

    lines = (p.get("lines") or ctx.ws.config.text_lines) if model.spec.task == "ocr" else None
    work = plan_work(ctx.ws, name, "prelabel-whole" if lines == "whole-image" else "prelabel",
                     min_score=float(p.get("min_score", 0.0)),
                     tile=int(p["tile"]) if p.get("tile") else None,
                     overlap=float(p.get("overlap", 0.2)))
    executor = open_executor(ExecutorSpec.from_params(p.get("executor")))
    # inference where the executor runs it; the writes here, in the images' order
    with closing(executor.map(work, [ImageRef.of(r) for r in todo])) as results:
        for ref, found in results:
            if isinstance(found, Failure):
                failed.append(found.message)
                continue
            writer.add(ref.id, label_map.apply(found) if label_map is not None else found)
        writer.flush()
    out = {"model": model.spec.source, "images": len(rows), **writer.totals,
           "failed_images": failed}
    if lines is not None:
        out["lines"] = lines
    if label_map is not None:
        out["dropped_unmapped"] = label_map.dropped
    if p.get("executor"):
        out["executor"] = p["executor"]["kind"]
    return out
