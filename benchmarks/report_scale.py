"""The analytics report at scale: 10,000 images and 200,000 annotations, with a review
history, built by LabelPilot; the nearest peer, Datumaro's dataset statistics, on the same
COCO file in the same run.

The workspace: the COCO set of benchmarks/coco_import_export.py (10,000 images of 96x72,
20 annotations each, half polygons, 10 classes) imported with images linked; then 60% of the
annotations made proposals of two model versions (scores drawn per outcome), of which 30%
left pending, 40% accepted, 15% edited (a third of those re-classed) and 15% rejected, each
decision in the audit log by one of five people at a human pace over ten days, and 70% of
the images marked done. Each step runs in its own process (peak memory its own):

- report, cold: `labelpilot.analytics.report.build` with the perceptual hashes of the
  10,000 images not yet computed (the first report of a workspace);
- report, warm: the same with the hashes kept (every later build after a change);
- the Analytics page: GET /api/analytics on the label server, first (builds) and again
  (the data unchanged: served from the cache);
- Datumaro: `Dataset.import_from(coco_instances)` and `compute_ann_statistics` (labels per
  class, box and segment area and aspect distributions), `compute_image_statistics` (reads
  every image: the work our hashing does).

Usage:
    python benchmarks/report_scale.py [--images 10000] [--per-image 20] [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coco_import_export import build as build_coco
from coco_import_export import peak_mb, run_step

OUT = Path(__file__).resolve().parent / "out"
PEOPLE = ("anna", "ben", "chen", "dara", "rita")


def simulate_review(ws: Any, seed: int = 0) -> dict[str, int]:
    """Proposals, decisions and their audit entries, written straight into the tables."""
    import numpy as np
    import orjson
    from sqlalchemy import text

    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    with ws.engine.begin() as conn:
        rows = conn.execute(text("SELECT a.id, a.image_id, l.name, a.x1, a.y1, a.x2, a.y2 "
                                 "FROM annotations a JOIN label_classes l ON l.id = a.label_id "
                                 "ORDER BY a.id")).all()
        names = [n for (n,) in conn.execute(text("SELECT name FROM label_classes"))]
        labels = dict(conn.execute(text("SELECT name, id FROM label_classes")).all())
        n = len(rows)
        proposal = rng.random(n) < 0.6
        fate = rng.choice(["pending", "accepted", "edited", "rejected"], size=n,
                          p=[0.3, 0.4, 0.15, 0.15])
        version = np.where(rng.random(n) < 0.5, "model:det@1", "model:det@2")
        # scores: accepted ones higher on average, rejected ones lower
        centre = {"pending": 0.6, "accepted": 0.8, "edited": 0.6, "rejected": 0.4}
        score = np.clip([rng.normal(centre[f], 0.15) for f in fate], 0.01, 0.99)
        # each person works in turn through the images at 5-40 s per decision
        clock = {p: start + timedelta(hours=i) for i, p in enumerate(PEOPLE)}
        updates, audit = [], []
        counts = {"proposals": 0, "audit": 0}
        for k, (aid, image_id, label, x1, y1, x2, y2) in enumerate(rows):
            if not proposal[k]:
                continue
            counts["proposals"] += 1
            who = PEOPLE[image_id % len(PEOPLE)]
            f = str(fate[k])
            status = {"pending": "predicted"}.get(f, f)
            new_label = label
            if f != "pending":
                clock[who] += timedelta(seconds=float(rng.uniform(5, 40)))
                if clock[who].hour >= 18:  # the day ends; the next starts at 8
                    clock[who] = (clock[who] + timedelta(days=1)).replace(hour=8, minute=0)
            when = clock[who]
            if f == "edited" and rng.random() < 1 / 3:
                new_label = names[(names.index(label) + 1) % len(names)]
            updates.append({"id": aid, "source": str(version[k]), "score": float(score[k]),
                            "status": status, "label_id": labels[new_label],
                            "by": None if f == "pending" else who, "at": when})
            if f in ("accepted", "rejected"):
                audit.append({"image_id": image_id, "annotation_id": aid, "action": f,
                              "username": who, "at": when, "before": None, "after": None})
            elif f == "edited":
                box = {"type": "box", "xyxy": [x1, y1, x2, y2]}
                moved = {"type": "box", "xyxy": [x1 + 1, y1, x2 + 1, y2]}
                before = {"label": label, "shape": box, "text": None, "attributes": {},
                          "status": "predicted", "version": 1, "source": str(version[k]),
                          "score": float(score[k])}
                after = {**before, "label": new_label, "status": "edited", "version": 2,
                         "shape": box if new_label != label else moved}
                audit.append({"image_id": image_id, "annotation_id": aid, "action": "update",
                              "username": who, "at": when,
                              "before": orjson.dumps(before).decode(),
                              "after": orjson.dumps(after).decode()})
        for i in range(0, len(updates), 5000):
            conn.execute(text("UPDATE annotations SET source = :source, score = :score, "
                              "status = :status, label_id = :label_id, updated_by = :by, "
                              "updated_at = :at WHERE id = :id"), updates[i:i + 5000])
        images = conn.execute(text("SELECT id FROM images ORDER BY id")).all()
        done = [i for (i,) in images if rng.random() < 0.7]
        for image_id in done:
            who = PEOPLE[image_id % len(PEOPLE)]
            clock[who] += timedelta(seconds=3)
            audit.append({"image_id": image_id, "annotation_id": None, "action": "review_state",
                          "username": who, "at": clock[who],
                          "before": '{"review_state": "prelabeled"}',
                          "after": '{"review_state": "done", "comment": null, "pending": null}'})
        for i in range(0, len(done), 5000):
            conn.execute(text("UPDATE images SET review_state = 'done' WHERE id = :id"),
                         [{"id": x} for x in done[i:i + 5000]])
        audit.sort(key=lambda e: e["at"])
        for i in range(0, len(audit), 5000):
            conn.execute(text("INSERT INTO audit_log (image_id, annotation_id, action, username, "
                              "at, before, after) VALUES (:image_id, :annotation_id, :action, "
                              ":username, :at, :before, :after)"), audit[i:i + 5000])
        counts["audit"] = len(audit)
        counts["done"] = len(done)
    return counts


def step(name: str, data: Path, work: Path, db_url: str | None) -> dict[str, Any]:
    """One measured operation, in a fresh process (see `main`)."""
    from labelpilot.workspace import Workspace

    path = work / "ws"
    if name == "setup":
        from labelpilot.transfer import import_dataset

        shutil.rmtree(path, ignore_errors=True)
        ws = Workspace.create(path, task="detect", database_url=db_url)
        t = time.perf_counter()
        r = import_dataset(ws, data, format="coco", link=True)
        imported = time.perf_counter() - t
        counts = simulate_review(ws)
        ws.close()
        return {"seconds": imported, "annotations": r.annotations_added, **counts}
    if name in ("report-cold", "report-warm"):
        from labelpilot.analytics.report import build

        ws = Workspace.open(path)
        ws.engine  # noqa: B018 - connect and check migrations outside the timing
        t = time.perf_counter()
        report = build(ws)
        dt = time.perf_counter() - t
        ws.close()
        drawn = sum(p.why_not is None for p in report.panels)
        return {"seconds": dt, "peak_mb": peak_mb(), "hashed": report.hashed,
                "panels": len(report.panels), "drawn": drawn}
    if name == "page":
        from fastapi.testclient import TestClient

        from labelpilot import users
        from labelpilot.server.app import create_app
        from labelpilot.settings import Settings

        ws = Workspace.open(path)
        with ws.engine.begin() as conn:
            if "lead" not in {u.username for u in users.list_users(conn)}:
                users.add_user(conn, username="lead", password="a long bench password",
                               role="reviewer")
        with TestClient(create_app(ws, Settings(job_workers=0))) as client:
            tok = client.post("/api/auth/token", data={"username": "lead",
                                                       "password": "a long bench password"})
            h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            times = []
            for _ in range(3):
                t = time.perf_counter()
                resp = client.get("/api/analytics", headers=h)
                times.append(time.perf_counter() - t)
                assert resp.status_code == 200, resp.text
            size = len(resp.content)
        ws.close()
        return {"first": times[0], "cached": min(times[1:]), "bytes": size,
                "peak_mb": peak_mb()}
    if name == "datumaro":
        from datumaro.components.dataset import Dataset
        from datumaro.components.operations import (
            compute_ann_statistics,
            compute_image_statistics,
        )

        t = time.perf_counter()
        ds = Dataset.import_from(str(data), "coco_instances")
        imported = time.perf_counter() - t
        t = time.perf_counter()
        ann = compute_ann_statistics(ds)
        ann_s = time.perf_counter() - t
        t = time.perf_counter()
        compute_image_statistics(ds)
        img_s = time.perf_counter() - t
        return {"import": imported, "ann_stats": ann_s, "image_stats": img_s,
                "seconds": imported + ann_s + img_s, "peak_mb": peak_mb(),
                "annotations": int(ann.get("annotations count", 0))}
    raise SystemExit(f"unknown step {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--per-image", type=int, default=20)
    ap.add_argument("--postgres", metavar="URL", nargs="?", const="postgresql+psycopg://"
                    "postgres@127.0.0.1:5432/test", help="the workspace on PostgreSQL")
    ap.add_argument("--no-datumaro", action="store_true", help="skip the peer")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = OUT / "coco_bench"
    work = OUT / "report_work"
    if args.step:
        print(json.dumps(step(args.step, data, work, args.db_url), default=str))
        return
    build_coco(data, args.images, args.per_image)
    work.mkdir(parents=True, exist_ok=True)
    db_url = None
    if args.postgres:
        from sqlalchemy import create_engine, text

        with create_engine(args.postgres).begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS lp_report CASCADE"))
            conn.execute(text("CREATE SCHEMA lp_report"))
        db_url = f"{args.postgres}?options=-csearch_path%3Dlp_report"

    def run(name: str) -> dict[str, Any]:
        return run_step(__file__, name, db_url)

    setup = run("setup")
    print(f"workspace: {args.images:,} images, {setup['annotations']:,} annotations, "
          f"{setup['proposals']:,} proposals, {setup['audit']:,} audit entries, "
          f"{setup['done']:,} images done ({'PostgreSQL' if db_url else 'SQLite'})")
    results = {"setup": setup, "cold": run("report-cold"), "warm": run("report-warm"),
               "page": run("page")}
    if not args.no_datumaro:
        results["datumaro"] = run("datumaro")
    c, w, p = results["cold"], results["warm"], results["page"]
    print(f"\n{'step':<46}{'seconds':>9}{'peak MB':>9}")
    print(f"{'LabelPilot report, cold (hashes computed)':<46}{c['seconds']:>9.2f}{c['peak_mb']:>9.0f}")
    print(f"{'LabelPilot report, warm (hashes kept)':<46}{w['seconds']:>9.2f}{w['peak_mb']:>9.0f}")
    print(f"{'Analytics page, first request (builds)':<46}{p['first']:>9.2f}{p['peak_mb']:>9.0f}")
    print(f"{'Analytics page, data unchanged (cached)':<46}{p['cached']:>9.3f}{'':>9}")
    if "datumaro" in results:
        d = results["datumaro"]
        print(f"{'Datumaro import + ann. + image statistics':<46}{d['seconds']:>9.2f}{d['peak_mb']:>9.0f}")
        print(f"{'  of which import':<46}{d['import']:>9.2f}")
        print(f"{'  of which compute_ann_statistics':<46}{d['ann_stats']:>9.2f}")
        print(f"{'  of which compute_image_statistics':<46}{d['image_stats']:>9.2f}")
        print(f"\nDatumaro / LabelPilot warm: {d['seconds'] / w['seconds']:.2f}x; "
              f"cold: {d['seconds'] / c['seconds']:.2f}x")
    print(f"panels: {w['panels']} ({w['drawn']} drawn); page JSON {p['bytes'] / 1e6:.1f} MB")
    (OUT / "report_scale.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
