"""Detection test workspaces from the real coco128 images (shared/datasets/coco128)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from labelpilot.models.catalogue import install
from labelpilot.transfer import import_dataset


def coco_subset(shared: Path, folder: Path, classes: list[str], train: int, test: int) -> dict:
    """COCO files for the first `train` coco128 images holding `classes` (by file name) and
    the next `test`, with only those classes' boxes: {"train": dir, "test": dir}."""
    root = shared / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in j["categories"]}
    has = {a["image_id"] for a in j["annotations"] if names[a["category_id"]] in classes}
    ims = [im for im in sorted(j["images"], key=lambda i: i["file_name"]) if im["id"] in has]
    out = {}
    for split, sel in (("train", ims[:train]), ("test", ims[train:train + test])):
        if not sel:
            continue
        d = folder / split
        (d / "images").mkdir(parents=True)
        ids = {im["id"] for im in sel}
        for im in sel:
            shutil.copy(root / "train2017" / im["file_name"], d / "images" / im["file_name"])
        (d / "a.json").write_text(json.dumps({
            "images": sel, "categories": [c for c in j["categories"] if c["name"] in classes],
            "annotations": [a for a in j["annotations"] if a["image_id"] in ids
                            and names[a["category_id"]] in classes]}))
        out[split] = d
    return out


def detect_workspace(make_workspace: Any, tmp_path: Path, shared: Path, labels: list[str], *,
                     classes: list[str] | None = None, train: int = 0, test: int = 0,
                     users: bool = False) -> Any:
    """A detection workspace with yolox-nano installed, holding either the first coco128
    image unlabelled (no `classes`) or a labelled subset of `classes` split train/test."""
    ws = make_workspace(task="detect", labels=labels)
    if classes:
        for split, d in coco_subset(shared, tmp_path / "c", classes, train, test).items():
            import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    else:
        first = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[0]
        (tmp_path / "i").mkdir()
        shutil.copy(first, tmp_path / "i" / first.name)
        import_dataset(ws, tmp_path / "i", format="images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    if users:
        from tests.server.conftest import add_users

        add_users(ws)
    return ws


def bench_of_small_people(shared: Path, *, width: int = 2560, height: int = 1440,
                          scale: float = 0.5, count: int = 12
                          ) -> tuple[Any, list[tuple[float, float, float, float]]]:
    """A large image with small objects: coco128 images holding people, shrunk by `scale`
    and laid side by side on a grey `width` x `height` canvas (BGR), and the people's boxes
    on it (crowds left out)."""
    import cv2
    import numpy as np

    from tests.imaging import read_bgr

    root = shared / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    person = next(c["id"] for c in j["categories"] if c["name"] == "person")
    people: dict[int, list[dict]] = {}
    for a in j["annotations"]:
        if a["category_id"] == person and not a["iscrowd"]:
            people.setdefault(a["image_id"], []).append(a)
    ims = [im for im in sorted(j["images"], key=lambda i: i["file_name"]) if im["id"] in people]
    canvas = np.full((height, width, 3), 120, np.uint8)
    boxes: list[tuple[float, float, float, float]] = []
    x = y = row = 0
    for im in ims[:count]:
        img = cv2.resize(read_bgr(root / "train2017" / im["file_name"]), None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        if x + w > width:
            x, y, row = 0, y + row, 0
        if y + h > height:
            break
        canvas[y:y + h, x:x + w] = img
        for a in people[im["id"]]:
            bx, by, bw, bh = a["bbox"]
            boxes.append((x + bx * scale, y + by * scale, x + (bx + bw) * scale, y + (by + bh) * scale))
        x, row = x + w, max(row, h)
    return canvas, boxes


def share_found(found: Any, truth: list[tuple[float, float, float, float]], iou: float = 0.5
                ) -> float:
    """The share of the `truth` boxes that some box of `found` ([N, 4] x1 y1 x2 y2) overlaps
    by at least `iou` (recall)."""
    import numpy as np

    hit = 0
    for g in truth:
        if not len(found):
            continue
        ix = np.clip(np.minimum(found[:, 2], g[2]) - np.maximum(found[:, 0], g[0]), 0, None)
        iy = np.clip(np.minimum(found[:, 3], g[3]) - np.maximum(found[:, 1], g[1]), 0, None)
        inter = ix * iy
        union = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1]) \
            + (g[2] - g[0]) * (g[3] - g[1]) - inter
        hit += int((inter / union >= iou).any())
    return hit / len(truth)


def bullseyes(folder: Path, shared: Path, n: int, seed: int, *, size: tuple[int, int] | None = None,
              per_image: tuple[int, int] = (1, 4), radius: tuple[int, int] = (18, 50),
              name: str = "b") -> Path:
    """`n` coco128 photos (resized to `size` when given) with bullseyes (red and white
    rings, a class no COCO model has) painted in at random radii in `radius` and random
    places, `per_image` of them (low, high exclusive), as a COCO file."""
    import cv2
    import numpy as np

    from tests.imaging import read_bgr

    rng = np.random.default_rng(seed)
    photos = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))
    (folder / "images").mkdir(parents=True)
    images: list[dict] = []
    anns: list[dict] = []
    step = (41, 11) if size else (37, 7)
    for i in range(n):
        img = read_bgr(photos[(seed * step[0] + i * step[1]) % len(photos)])
        if size:
            img = cv2.resize(img, size)
        h, w = img.shape[:2]
        for _ in range(int(rng.integers(*per_image))):
            r = int(rng.integers(*radius))
            cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
            for k, colour in enumerate([(0, 0, 220), (255, 255, 255)] * 3):
                cv2.circle(img, (cx, cy), max(1, r - k * r // 6), colour, -1)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "bbox": [cx - r, cy - r, 2 * r, 2 * r], "area": 4 * r * r,
                         "iscrowd": 0})
        file_name = f"{name}{seed}_{i}.jpg"
        cv2.imwrite(str(folder / "images" / file_name), img)
        images.append({"id": i + 1, "file_name": file_name, "width": w, "height": h})
    (folder / "a.json").write_text(json.dumps({
        "images": images, "annotations": anns, "categories": [{"id": 1, "name": "bullseye"}]}))
    return folder
