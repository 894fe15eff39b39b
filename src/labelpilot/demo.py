"""The demo workspaces, their labels imported the normal way: half the images come with
reviewed labels (the train split); of the rest, half carry a model's proposals to review
and half are unlabeled.

- `ocr` (the default): industrial-style labels with text lines, pre-labeled by the
  built-in OCR model.
- `segment`: machine parts (washers, brackets, plates) on a workbench, outlined as
  polygons (a washer with its hole), pre-labeled by the built-in graph-cut segmenter given
  a box round each part, as a person would with the smart mask tool.
- `detect`: the same benches with boxes, pre-labeled by click to box's mask method (the
  graph cut's mask for a click on each part, boxed), as no detector ships offline.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from labelpilot.annotations import Annotation, Box, mask_to_polygons
from labelpilot.errors import LabelPilotError
from labelpilot.geometry import rle
from labelpilot.store.repo import list_images as repo_images
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace

_WORDS = ["LOT", "EXP", "REF", "SN", "P/N", "QTY", "MFG", "BATCH", "CODE"]


def _sample(rng: random.Random, index: int) -> tuple[Image.Image, list[dict[str, object]]]:
    w, h = 480, 320
    y: float
    bg = tuple(rng.randint(200, 245) for _ in range(3))
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    records = []
    y = 24
    for _ in range(rng.randint(3, 5)):
        size = rng.randint(22, 34)
        font = ImageFont.load_default(size=size)
        text = f"{rng.choice(_WORDS)} {rng.randint(10, 99)}{rng.choice('ABCDEFGHJK')}" \
               f"{rng.randint(1000, 9999)}"
        x = rng.randint(16, 80)
        x1, y1, x2, y2 = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, fill=(rng.randint(0, 60),) * 3, font=font)
        pad = 4
        records.append({"transcription": text, "difficult": False,
                        "points": [[x1 - pad, y1 - pad], [x2 + pad, y1 - pad],
                                   [x2 + pad, y2 + pad], [x1 - pad, y2 + pad]]})
        y = y2 + rng.randint(18, 36)
        if y > h - 40:
            break
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    return im, records


PROJECTS = ("ocr", "segment", "detect")


def build_demo(directory: Path, *, force: bool = False, count: int = 12,
               project: str = "ocr") -> Workspace:
    if project not in PROJECTS:
        raise LabelPilotError(f"the demo project is one of {', '.join(PROJECTS)}, not {project!r}")
    if directory.exists() and force:
        shutil.rmtree(directory)
    if (directory / "labelpilot.toml").exists():
        return Workspace.open(directory)
    if project in ("segment", "detect"):
        return _build_parts(directory, count, boxes=project == "detect")
    rng = random.Random(7)
    ws = Workspace.create(directory, name="demo", task="ocr", labels=["text"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "samples"
        folder.mkdir()
        fresh = Path(tmp) / "fresh"
        fresh.mkdir()
        lines = []
        for i in range(count):
            im, records = _sample(rng, i)
            name = f"label_{i:03d}.jpg"
            if i < count // 2:
                im.save(folder / name, quality=92)
                lines.append(f"samples/{name}\t{orjson.dumps(records).decode()}\n")
            else:
                im.save(fresh / name, quality=92)
        (folder / "Label.txt").write_text("".join(lines), encoding="utf-8")
        import_dataset(ws, folder, format="ppocrlabel", split="train")
        names = sorted(p.name for p in fresh.iterdir())
        import_dataset(ws, fresh, format="images")
    _prelabel(ws, names[: (len(names) + 1) // 2])
    return ws


def _prelabel(ws: Workspace, names: list[str]) -> None:
    """Proposals to review on the images `names`, from the built-in OCR model."""
    from labelpilot.models.registry import load_predictor
    from labelpilot.proposals import prelabel_targets, store_proposals

    model = load_predictor("ocr", ws.models_dir)
    with ws.engine.connect() as conn:
        rows = [r for r in prelabel_targets(conn, "new") if r.file_name in names]
    for row in rows:
        found = model.predict(ws.blobs.load_image(row))
        with ws.transaction() as conn:
            store_proposals(conn, image_id=row.id, proposals=found)


PARTS = ["washer", "bracket", "plate"]


def _part_mask(rng: random.Random, kind: str, w: int, h: int) -> np.ndarray:
    """One part's pixels somewhere on a w x h bench."""
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    cx, cy = rng.randint(70, w - 70), rng.randint(70, h - 70)
    if kind == "washer":
        r = rng.randint(30, 50)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
        d.ellipse((cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2), fill=0)
    elif kind == "bracket":
        a, t = rng.randint(60, 90), rng.randint(16, 24)
        d.polygon([(cx - a // 2, cy - a // 2), (cx - a // 2 + t, cy - a // 2),
                   (cx - a // 2 + t, cy + a // 2 - t), (cx + a // 2, cy + a // 2 - t),
                   (cx + a // 2, cy + a // 2), (cx - a // 2, cy + a // 2)], fill=1)
    else:
        pw, ph = rng.randint(70, 110), rng.randint(40, 60)
        d.rectangle((cx - pw // 2, cy - ph // 2, cx + pw // 2, cy + ph // 2), fill=1)
    return np.asarray(m, dtype=bool)


def _parts_scene(rng: random.Random) -> tuple[Image.Image, list[tuple[str, np.ndarray]]]:
    w, h = 480, 320
    base = np.linspace(150, 190, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    base += np.asarray([10, 5, -10], np.float32)
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    im = np.clip(base + nrng.normal(0, 6, base.shape), 0, 255)
    taken = np.zeros((h, w), bool)
    parts: list[tuple[str, np.ndarray]] = []
    colours = {"washer": (90, 95, 105), "bracket": (40, 70, 140), "plate": (150, 60, 40)}
    for kind in rng.sample(PARTS, k=rng.randint(2, 3)):
        for _ in range(20):  # a free spot on the bench
            m = _part_mask(rng, kind, w, h)
            if not (m & taken).any():
                break
        else:
            continue
        taken |= m
        im[m] = np.asarray(colours[kind], np.float32) + nrng.normal(0, 8, (int(m.sum()), 3))
        parts.append((kind, m))
    out = Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    return out, parts


def _build_parts(directory: Path, count: int, *, boxes: bool = False) -> Workspace:
    """The `segment` demo: its reviewed half as a COCO file (washers as RLE masks, their
    holes kept; brackets and plates as polygons), the rest as plain images. With `boxes`,
    the `detect` demo: the same, as boxes."""
    rng = random.Random(11)
    ws = Workspace.create(directory, name="demo-parts-boxes" if boxes else "demo-parts",
                          task="detect" if boxes else "segment", labels=PARTS)
    later: dict[str, list[tuple[str, np.ndarray]]] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        labeled, fresh = Path(tmp) / "labeled", Path(tmp) / "fresh"
        (labeled / "images").mkdir(parents=True)
        fresh.mkdir()
        for i in range(count):
            im, parts = _parts_scene(rng)
            name = f"bench_{i:03d}.png"
            if i >= count // 2:
                im.save(fresh / name)
                later[name] = parts
                continue
            im.save(labeled / "images" / name)
            images.append({"id": i + 1, "file_name": name, "width": im.width, "height": im.height})
            for kind, m in parts:
                ys, xs = np.nonzero(m)
                seg: Any
                if boxes:
                    seg = []
                elif kind == "washer":
                    seg = {"size": [im.height, im.width], "counts": rle.encode(m.astype(np.uint8))}
                else:
                    seg = [[c for p in poly.points for c in p]
                           for poly in mask_to_polygons(m.astype(np.uint8), 1.0)]
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1, "iscrowd": 0,
                    "category_id": PARTS.index(kind) + 1, "segmentation": seg,
                    "area": int(m.sum()), "bbox": [int(xs.min()), int(ys.min()),
                                                   int(xs.max() - xs.min() + 1),
                                                   int(ys.max() - ys.min() + 1)]})
        (labeled / "annotations.json").write_bytes(orjson.dumps({
            "images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(PARTS)]}))
        import_dataset(ws, labeled / "annotations.json", format="coco", split="train",
                       images_dir=labeled / "images")
        import_dataset(ws, fresh, format="images")
    _segment_parts(ws, dict(sorted(later.items())[: (len(later) + 1) // 2]), boxes=boxes)
    return ws


def _segment_parts(ws: Workspace, parts: dict[str, list[tuple[str, np.ndarray]]], *,
                   boxes: bool = False) -> None:
    """Proposals on the images `parts` names: the graph cut's mask for a box round each
    part (the box a person would drag with the smart mask tool); with `boxes`, the box
    round its mask for a click on the part (click to box)."""
    from labelpilot.models.base import Click, Prompt
    from labelpilot.models.registry import load_segmenter, segmenter_manifest
    from labelpilot.proposals import store_proposals

    manifest = segmenter_manifest("graphcut", ws.models_dir)
    seg = load_segmenter("graphcut", ws.models_dir, threads=1)
    with ws.engine.connect() as conn:
        rows = [r for r in repo_images(conn) if r.file_name in parts]
    for row in rows:
        rgb = ws.blobs.load_rgb(row)
        embedding = seg.embed(rgb)
        found = []
        for kind, m in parts[row.file_name]:
            ys, xs = np.nonzero(m)
            if boxes:
                k = len(xs) // 2  # a pixel of the part (a washer's middle is its hole)
                best = seg.predict(embedding, Prompt(clicks=[Click(float(xs[k]), float(ys[k]))]))[0]
                my, mx = np.nonzero(best.mask)
                if len(mx):
                    found.append(Annotation(
                        label=kind, shape=Box(float(mx.min()), float(my.min()),
                                              float(mx.max() + 1), float(my.max() + 1)),
                        score=best.quality, source=manifest.source, status="predicted"))
                continue
            box = (float(xs.min()) - 6, float(ys.min()) - 6, float(xs.max()) + 6, float(ys.max()) + 6)
            best = seg.predict(embedding, Prompt(box=box))[0]
            for poly in mask_to_polygons(best.mask.astype(np.uint8), 1.0):
                found.append(Annotation(label=kind, shape=poly, score=best.quality,
                                        source=manifest.source, status="predicted"))
        with ws.transaction() as conn:
            store_proposals(conn, image_id=row.id, proposals=found)
