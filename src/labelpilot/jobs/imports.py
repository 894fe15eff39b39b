"""The `import` job: an archive uploaded from the browser (images and label files), imported
as the CLI imports a folder. The import itself is one transaction (all or nothing); a job
taken over after a crash imports again, finding what is already there. The uploaded
archive is removed when the job ends, whatever the outcome."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labelpilot.jobs.engine import JobContext
from labelpilot.transfer import import_dataset


def uploads_dir(root: Path) -> Path:
    return root / "imports"


def run_import(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    archive = Path(p["path"])
    if not archive.is_relative_to(uploads_dir(ctx.ws.root)):
        raise ValueError("an import job reads only the workspace's uploaded archives")
    last = [0.0]

    def progress(_stage: str, done: int, total: int) -> None:
        # the images checked so far; written at most twice a second
        if done == total or time.monotonic() - last[0] >= 0.5:
            last[0] = time.monotonic()
            ctx.report(done, total)

    try:
        report = import_dataset(
            ctx.ws, archive, format=p["format"], split=p.get("split"),
            strict=bool(p.get("strict")), skip_invalid=bool(p.get("skip_invalid")),
            user=ctx.job.created_by, progress=progress)
    finally:
        archive.unlink(missing_ok=True)
    out = report.to_dict()
    out["source"] = p.get("name", archive.name)
    return out
