"""COCO import/export: LabelPilot against Datumaro on the same file, in one run.

Builds a COCO dataset of 10,000 small images and 200,000 annotations (half boxes, half
polygons of 8-12 points), then times, each in its own process so peak memory is its own:

- LabelPilot import: parse, validate, check and hash every image, store blobs, write the
  database (SQLite, or PostgreSQL with --postgres) in one transaction;
- Datumaro import: `Dataset.import_from(..., "coco_instances")` and a walk over every item
  and annotation (Datumaro loads lazily; the walk makes it do the work);
- export of the labels to COCO JSON by both (images not copied by either).

Usage:
    python benchmarks/coco_import_export.py [--images 10000] [--per-image 20] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def build(root: Path, n_images: int, per_image: int) -> Path:
    import numpy as np
    from PIL import Image

    marker = root / f".built-{n_images}-{per_image}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    img_dir = root / "images" / "default"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    w, h = 96, 72
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    for i in range(n_images):
        arr = base.copy()
        arr[i % h, :, :] = i % 251  # every image distinct
        arr[:, (i // h) % w, 0] = (i * 7) % 253
        name = f"img_{i:06d}.jpg"
        Image.fromarray(arr).save(img_dir / name, quality=80)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for j in range(per_image):
            x, y = float(rng.uniform(0, w - 20)), float(rng.uniform(0, h - 20))
            bw, bh = float(rng.uniform(4, 20)), float(rng.uniform(4, 20))
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 + (i + j) % 10,
                   "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                   "area": round(bw * bh, 2), "iscrowd": 0, "segmentation": []}
            if j % 2:
                k = int(rng.integers(8, 13))
                t = np.sort(rng.uniform(0, 2 * np.pi, k))
                px = x + bw / 2 + np.cos(t) * bw / 2
                py = y + bh / 2 + np.sin(t) * bh / 2
                ann["segmentation"] = [np.round(np.stack([px, py], 1).ravel(), 2).tolist()]
            anns.append(ann)
    (root / "annotations").mkdir()
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": c + 1, "name": f"class_{c}", "supercategory": ""}
                          for c in range(10)]}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    marker.touch()
    return root


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(script: str, name: str, db_url: str | None = None) -> dict[str, Any]:
    """Run `script --step name` in a fresh process (its peak memory its own) and return
    the JSON it prints last."""
    cmd = [sys.executable, script, "--step", name]
    if db_url:
        cmd += ["--db-url", db_url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def step(name: str, data: Path, work: Path, db_url: str | None) -> dict[str, float]:
    """One measured operation, run in a fresh process by `main`."""
    if name == "labelpilot-parse":
        from labelpilot.formats import get_format
        from labelpilot.transfer import gc_paused

        t = time.perf_counter()
        with gc_paused():
            ds = get_format("coco").load(data)
        n = sum(len(item.annotations) for item in ds.items)
        return {"seconds": time.perf_counter() - t, "annotations": n, "peak_mb": peak_mb()}
    if name in ("labelpilot-import", "labelpilot-import-link"):
        from labelpilot.transfer import import_dataset
        from labelpilot.workspace import Workspace

        # A new folder each run: deleting 10,000 blobs right before the timing would leave
        # the disk busy (discard) and slow the writes being measured.
        old = [p for p in work.glob("ws-*") if p.is_dir()]
        path = work / f"ws-{time.time_ns()}"
        ws = Workspace.create(path, task="segment", database_url=db_url)
        t = time.perf_counter()
        r = import_dataset(ws, data, format="coco", link=name.endswith("link"))
        dt = time.perf_counter() - t
        ws.close()
        (work / "latest").write_text(str(path))
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
        assert r.annotations_added > 0, r
        return {"seconds": dt, "annotations": r.annotations_added, "peak_mb": peak_mb()}
    if name == "labelpilot-export":
        from labelpilot.transfer import export_dataset
        from labelpilot.workspace import Workspace

        shutil.rmtree(work / "lp_export", ignore_errors=True)
        ws = Workspace.open(Path((work / "latest").read_text()))
        ws.engine  # noqa: B018 - connect and check migrations outside the timing
        t = time.perf_counter()
        exported = export_dataset(ws, work / "lp_export", format="coco", include_images=False)
        return {"seconds": time.perf_counter() - t, "annotations": exported.annotations,
                "peak_mb": peak_mb()}
    from datumaro.components.dataset import Dataset

    if name == "datumaro-import":
        t = time.perf_counter()
        ds = Dataset.import_from(str(data), "coco_instances")
        n = sum(len(item.annotations) for item in ds)
        return {"seconds": time.perf_counter() - t, "annotations": n, "peak_mb": peak_mb()}
    if name == "datumaro-export":
        shutil.rmtree(work / "dm_export", ignore_errors=True)
        ds = Dataset.import_from(str(data), "coco_instances")
        n = sum(len(item.annotations) for item in ds)
        t = time.perf_counter()
        ds.export(str(work / "dm_export"), "coco_instances", save_media=False)
        return {"seconds": time.perf_counter() - t, "annotations": n, "peak_mb": peak_mb()}
    raise SystemExit(f"unknown step {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--per-image", type=int, default=20)
    ap.add_argument("--postgres", metavar="URL", nargs="?", const="postgresql+psycopg://"
                    "postgres@127.0.0.1:5432/test", help="also run LabelPilot on PostgreSQL")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = OUT / "coco_bench"
    work = OUT / "work"
    if args.step:
        print(json.dumps(step(args.step, data, work, args.db_url)))
        return
    t = time.perf_counter()
    build(data, args.images, args.per_image)
    print(f"dataset: {args.images} images, {args.images * args.per_image} annotations "
          f"(built in {time.perf_counter() - t:.1f} s) at {data}")
    work.mkdir(parents=True, exist_ok=True)

    def run(name: str, db_url: str | None = None) -> dict[str, Any]:
        return run_step(__file__, name, db_url)

    results = {}
    for name in ("labelpilot-parse", "labelpilot-import-link", "labelpilot-import",
                 "labelpilot-export", "datumaro-import", "datumaro-export"):
        time.sleep(2)  # let the disk settle after the previous step's writes
        results[name] = run(name)
    pg = {}
    if args.postgres:
        from sqlalchemy import create_engine, text

        engine = create_engine(args.postgres)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS lp_bench CASCADE"))
            conn.execute(text("CREATE SCHEMA lp_bench"))
        url = f"{args.postgres}?options=-csearch_path%3Dlp_bench"
        pg = {"import": run("labelpilot-import", url), "export": run("labelpilot-export", url)}
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA lp_bench CASCADE"))
    rows = [("import: parse + validate", "labelpilot-parse", "datumaro-import"),
            ("import, images linked", "labelpilot-import-link", "datumaro-import"),
            ("import, images copied", "labelpilot-import", "datumaro-import"),
            ("export (labels)", "labelpilot-export", "datumaro-export")]
    print(f"\n{'operation':<28}{'LabelPilot s':>13}{'Datumaro s':>12}{'LP speed-up':>13}"
          f"{'LP peak MB':>12}{'DM peak MB':>12}")
    for op, lp, dm in rows:
        a, b = results[lp], results[dm]
        print(f"{op:<28}{a['seconds']:>13.2f}{b['seconds']:>12.2f}"
              f"{b['seconds'] / a['seconds']:>12.2f}x{a['peak_mb']:>12.0f}{b['peak_mb']:>12.0f}")
    if pg:
        for op in ("import", "export"):
            print(f"{op + ', PostgreSQL':<28}{pg[op]['seconds']:>13.2f}"
                  f"{'':>12}{'':>13}{pg[op]['peak_mb']:>12.0f}")
    counts = {k: int(v["annotations"]) for k, v in results.items()}
    print(f"\nannotations seen: {counts}")
    print("Datumaro's import parses the labels into memory. LabelPilot's parse + validate row is "
          "the same work; its import rows add checking, hashing and storing every image and "
          "writing the database in one transaction.")


if __name__ == "__main__":
    main()
