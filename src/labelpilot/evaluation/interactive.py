"""`labelpilot eval-interactive`: the click simulator (evaluation.clicker) over a workspace's
accepted region annotations (masks, polygons), with any segmenter."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError
from labelpilot.evaluation.clicker import InstanceTrace, miou_curve, simulate, summarize
from labelpilot.store import repo
from labelpilot.workspace import Workspace

REGION_TYPES = ("mask", "polygon")


def load_instances(ws: Workspace, split: str | None) -> list[tuple[Any, list[Any], Any]]:
    """(image row, object annotations, ignore annotations) for images that have objects."""
    with ws.engine.connect() as conn:
        rows, anns = repo.confirmed_labels(conn, split)
    out = []
    for r in rows:
        regions = [a for a in anns.get(r.id, []) if a.shape.type in REGION_TYPES]
        objects = [a for a in regions if not a.attributes.get("ignore")]
        if objects:
            out.append((r, objects, [a for a in regions if a.attributes.get("ignore")]))
    return out


def evaluate_interactive(ws: Workspace, *, model_name: str | None, split: str | None,
                         first: str = "click", max_clicks: int = 20,
                         segmenter: Any = None, progress: Any = None,
                         stop_at: float | None = None) -> dict[str, Any]:
    """NoC@85/90, mIoU after 1/3/5 interactions and latency per interaction over every
    accepted mask/polygon instance. `segmenter` overrides `model_name` (benchmarks);
    `stop_at` ends an instance once reached after the fifth interaction (saves time;
    NoC up to it and mIoU@1/3/5 are unchanged, the curve stays flat after)."""
    from labelpilot.formats.segmaps import shape_mask
    from labelpilot.models.registry import load_segmenter, segmenter_manifest

    if first not in ("click", "box"):
        raise LabelPilotError(f"--first must be click or box, not {first!r}")
    if not 1 <= max_clicks <= 100:
        raise LabelPilotError(f"--max-clicks must be between 1 and 100, not {max_clicks}")
    if segmenter is None:
        manifest = segmenter_manifest(model_name, ws.models_dir)
        segmenter = load_segmenter(manifest.name, ws.models_dir)
        source = manifest.source
    else:
        source = f"model:{segmenter.name}@{segmenter.version}"
    items = load_instances(ws, split)
    if not items:
        where = f"the {split} split" if split else "the workspace"
        raise LabelPilotError(f"{where} has no accepted masks or polygons to evaluate against",
                              hint="import ground truth first, e.g. `labelpilot import DIR SRC "
                                   "--format masks --split test`")
    traces: list[InstanceTrace] = []
    total = sum(len(objs) for _, objs, _ in items)
    done = 0
    for row, objects, ignores in items:
        image = ws.blobs.load_rgb(row)
        h, w = image.shape[:2]
        emb = segmenter.embed(image)
        ignore = np.zeros((h, w), bool)
        for a in ignores:
            ignore |= shape_mask(a.shape, w, h)
        for a in objects:
            gt = shape_mask(a.shape, w, h)
            if not gt.any():
                continue

            def predict(prompt: Any, emb: Any = emb) -> np.ndarray:
                return segmenter.predict(emb, prompt)[0].mask  # type: ignore[no-any-return]

            traces.append(simulate(predict, gt, ignore=ignore if ignore.any() else None,
                                   first=first, max_clicks=max_clicks, stop_at=stop_at,
                                   name=f"{row.file_name}#{a.id}"))
            done += 1
            if progress:
                progress("eval", done, total)
    result: dict[str, Any] = {"model": source, "split": split, "first": first,
                              "max_clicks": max_clicks, "images": len(items)}
    result.update(summarize(traces, max_clicks))
    result["instances"] = len(traces)
    result["miou_curve"] = miou_curve(traces, max_clicks)
    return result
