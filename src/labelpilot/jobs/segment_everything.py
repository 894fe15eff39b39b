"""The `segment-everything` job: an interactive segmenter proposes masks for whole images
(see assist.segment_everything), stored as `predicted` polygons with the model as source
and the same re-run rules as autolabel (a person's or a rejected label is never
overwritten)."""

from __future__ import annotations

from typing import Any

from labelpilot.annotations import Annotation, mask_to_polygons
from labelpilot.assist.segment_everything import segment_everything
from labelpilot.errors import LabelPilotError
from labelpilot.jobs.autolabel import TOTALS, add_counts, store_image_proposals
from labelpilot.jobs.engine import JobContext
from labelpilot.models.registry import load_segmenter, segmenter_manifest
from labelpilot.proposals import prelabel_targets


def run_segment_everything(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    manifest = segmenter_manifest(p.get("model"), ctx.ws.models_dir)
    seg = load_segmenter(manifest.name, ctx.ws.models_dir, threads=1)
    label = p.get("label") or "object"
    box = tuple(p["box"]) if p.get("box") else None
    with ctx.ws.engine.connect() as conn:
        rows = prelabel_targets(conn, p.get("images", "new"))
    if p.get("image_ids"):
        wanted = set(p["image_ids"])
        rows = [r for r in rows if r.id in wanted]
    ctx.set_items(str(r.id) for r in rows)
    totals = dict.fromkeys(TOTALS, 0)
    failed = []
    for row in rows:
        if ctx.is_finished(str(row.id)):
            continue
        try:
            image = ctx.ws.blobs.load_rgb(row)
        except LabelPilotError as e:
            failed.append(e.message)
            continue
        grid = int(p.get("grid", 4 if manifest.kind == "graphcut" else 8))
        found = segment_everything(seg, image, box=box, grid=grid,
                                   min_quality=float(p.get("min_quality", 0.0)))
        anns = []
        for prop, cls in found:
            for poly in mask_to_polygons(prop.mask, float(p.get("tolerance", 1.0))):
                anns.append(Annotation(label=cls or label, shape=poly, score=prop.quality,
                                       source=manifest.source, status="predicted"))
        add_counts(totals, store_image_proposals(ctx, row.id, anns))
    return {"model": manifest.source, "images": len(rows), **totals, "failed_images": failed}
