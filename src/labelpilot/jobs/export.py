"""The `export` job: an export that survives a server crash and resumes where it stopped.

It writes into `exports/job-<id>.partial/` inside the workspace; every image copied is a
finished item. A restarted job finds the copied files in place and skips them; the label
files are written again (they are cheap). At the end the folder is renamed and zipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from labelpilot.formats import get_format
from labelpilot.formats.base import DatasetItem
from labelpilot.jobs.engine import JobContext
from labelpilot.transfer import EXPORT_STATUSES, export_items


def export_dir(root: Path, job_id: int) -> Path:
    return root / "exports" / f"job-{job_id}"


def run_export(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    status = p.get("status", "accepted")
    if status not in EXPORT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EXPORT_STATUSES)}")
    fmt = get_format(p["format"])
    ds, n_ann = export_items(ctx.ws, status=status, split=p.get("split"),
                             include_images=p.get("include_images", True))
    final = export_dir(ctx.ws.root, ctx.job.id)
    staging = final.with_name(final.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    resumed_from = ctx.done
    counts = {"written": 0, "already_there": 0}

    def on_image(item: DatasetItem, wrote: bool) -> None:
        if not ctx.is_finished(item.name):  # recorded by an earlier run: not counted again
            counts["written" if wrote else "already_there"] += 1
        ctx.item_done(item.name)

    ds.image_written = on_image
    ctx.set_total(len(ds.items))
    try:
        fmt.save(ds, staging)
    except BaseException:
        # cancelled or failed: the job ends here and is not resumed, so nothing is kept (a
        # crash, which raises nothing, keeps the folder for the resumed run)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for item in ds.items:  # labels-only exports have no per-image work
        ctx.item_done(item.name)
    ctx.flush()
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    archive = shutil.make_archive(str(final), "zip", final)
    return {"path": str(final), "zip": archive, "format": p["format"], "images": len(ds.items),
            "annotations": n_ann, "resumed_from": resumed_from, **counts,
            "left_out": dict(ds.left_out),
            "warnings": ds.warnings[:100]}
