"""PaddleOCR formats.

`ppocrlabel`: PPOCRLabel's `Label.txt` (`folder/image<TAB>[{"transcription", "points",
"difficult"}]`) and `fileState.txt` (`/path/image<TAB>1` for confirmed images). Export also
writes the recognition set PPOCRLabel makes: `crop_img/` + `rec_gt.txt`, each crop
perspective-rectified from its quad; every text line is kept, whatever tool drew it; and,
for images in a split, the training lists `det_gt_<split>.txt` and `<split>_rec_gt.txt`.

`ppocr-rec`: a recognition set (`rec_gt.txt`, or `train_rec_gt.txt` / `val_rec_gt.txt` /
`test_rec_gt.txt` for splits), each line `crop_path<TAB>text`. Import makes each crop an
image with one full-image text line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson

from labelpilot.annotations import Annotation, Polygon, Quad, text_corners
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    image_size,
    read_text_lines,
)
from labelpilot.geometry.crops import rectify

TEXT_LABEL = "text"
_SPLITS = ("train", "val", "test")


def _flat_name(item: DatasetItem) -> str:
    return item.name.replace("/", "__")


def write_rec_set(dataset: Dataset, dest: Path, *, by_split: bool) -> None:
    """Write `crop_img/` and `rec_gt.txt` (and `<split>_rec_gt.txt` per split)."""
    crops_dir = dest / "crop_img"
    crops_dir.mkdir(parents=True, exist_ok=True)
    lines: dict[str | None, list[str]] = {}
    for item in dataset.items:
        lines_here = [a for a in item.annotations if a.text]
        skipped = [a for a in item.annotations if not a.text]
        if skipped:
            dataset.warnings.append(f"{item.name}: {len(skipped)} text line(s) without a "
                                    "transcription left out of rec_gt.txt")
        if not lines_here:
            continue
        buf = np.frombuffer(item.read_bytes(), dtype=np.uint8)
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if image is None:
            dataset.warnings.append(f"{item.name}: image could not be decoded; no crops written")
            continue
        stem = Path(_flat_name(item)).stem
        for i, a in enumerate(lines_here):
            try:
                crop = rectify(image, text_corners(a.shape))
            except ValidationError as e:
                dataset.warnings.append(f"{item.name}: line {i} not cropped: {e.message}")
                continue
            name = f"{stem}_crop_{i}.jpg"
            ok, enc = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                dataset.warnings.append(f"{item.name}: line {i} could not be encoded as JPEG")
                continue
            (crops_dir / name).write_bytes(enc.tobytes())
            text = (a.text or "").replace("\t", " ").replace("\n", " ")
            lines.setdefault(item.split, []).append(f"crop_img/{name}\t{text}\n")
    (dest / "rec_gt.txt").write_text("".join(ln for v in lines.values() for ln in v),
                                     encoding="utf-8")
    if by_split:
        for split in _SPLITS:
            if split in lines:
                (dest / f"{split}_rec_gt.txt").write_text("".join(lines[split]),
                                                          encoding="utf-8")


class PPOCRLabel:
    name = "ppocrlabel"
    description = "PPOCRLabel Label.txt + fileState.txt; export adds crop_img/ + rec_gt.txt"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        label_txt = source if source.is_file() else source / "Label.txt"
        if not label_txt.is_file() and source.is_dir():
            label_txt = next(iter(sorted(source.glob("*/Label.txt"))), label_txt)
        if not label_txt.is_file():
            raise FormatError("no Label.txt found", path=source,
                              hint="point at the image folder PPOCRLabel saved Label.txt in")
        folder = label_txt.parent
        locator = ImageLocator([*([images_dir] if images_dir else []), folder.parent, folder])
        done = set()
        state = folder / "fileState.txt"
        if state.is_file():
            for ln in read_text_lines(state):
                path, _, flag = ln.rpartition("\t")
                if flag.strip() == "1":
                    done.add(Path(path.replace("\\", "/")).name)
        items = []
        for n, ln in enumerate(read_text_lines(label_txt), 1):
            if not ln.strip():
                continue
            path, sep, payload = ln.partition("\t")
            if not sep:
                raise FormatError("expected 'image_path<TAB>[...]'", path=label_txt, line=n)
            try:
                records = orjson.loads(payload)
            except orjson.JSONDecodeError as e:
                raise FormatError(f"the label list is not valid JSON ({e})", path=label_txt,
                                  line=n) from None
            if not isinstance(records, list):
                raise FormatError("the label list must be a JSON list", path=label_txt, line=n)
            base = Path(path.replace("\\", "/")).name
            found = locator.find(path, label_file=label_txt)
            item = DatasetItem(name=base, path=found,
                               review_state="done" if base in done else None)
            for i, r in enumerate(records):
                where = f"[{i}]"
                try:
                    pts = r["points"]
                    shape: Any = Quad(pts) if len(pts) == 4 else Polygon(pts)
                    attrs = {"difficult": True} if r.get("difficult") else {}
                    key = r.get("key_cls")
                    label = key if isinstance(key, str) and key not in ("", "None") else TEXT_LABEL
                    text = r.get("transcription")
                    item.annotations.append(Annotation(
                        label=label, shape=shape, text=text if isinstance(text, str) else None,
                        attributes=attrs))
                except (KeyError, TypeError) as e:
                    raise FormatError(f"each label needs 'points' and 'transcription' ({e})",
                                      path=label_txt, line=n, where=where) from None
                except ValidationError as e:
                    raise FormatError(e.message, path=label_txt, line=n, where=where) from None
            items.append(item)
        return Dataset(items, [TEXT_LABEL])

    def save(self, dataset: Dataset, dest: Path) -> None:
        folder = dest / "images"
        folder.mkdir(parents=True, exist_ok=True)
        label_lines, state_lines = [], []
        by_split: dict[str, list[str]] = {}
        for item in dataset.items:
            name = _flat_name(item)
            copy_image(dataset, item, folder / name)
            recs = []
            for a in item.annotations:
                try:
                    pts = text_corners(a.shape)
                except ValidationError:  # masks and points are not text lines
                    dataset.leave_out(f"PPOCRLabel holds text lines, not {a.shape.type}s")
                    continue
                rec: dict[str, Any] = {"transcription": a.text or "",
                                       "points": [[round(x, 2), round(y, 2)] for x, y in pts],
                                       "difficult": bool(a.attributes.get("difficult"))}
                if a.label != TEXT_LABEL:
                    rec["key_cls"] = a.label
                recs.append(rec)
            line = f"images/{name}\t{orjson.dumps(recs).decode()}\n"
            label_lines.append(line)
            if item.split in _SPLITS:
                by_split.setdefault(item.split, []).append(line)
            if item.review_state == "done":
                # the path the file will have once the export is in place, not in staging
                final = (dataset.destination or dest).resolve() / "images" / name
                state_lines.append(f"{final}\t1\n")
        (folder / "Label.txt").write_text("".join(label_lines), encoding="utf-8")
        (folder / "fileState.txt").write_text("".join(state_lines), encoding="utf-8")
        # Training lists per split, as PaddleOCR's det and rec trainers read them.
        for split, lines in by_split.items():
            (folder / f"det_gt_{split}.txt").write_text("".join(lines), encoding="utf-8")
        write_rec_set(dataset, folder, by_split=True)


class PPOCRRec:
    name = "ppocr-rec"
    description = "PaddleOCR recognition set: rec_gt.txt + crop images"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        if source.is_file():
            files = [(source, _split_of(source))]
        else:
            split_files = [(source / f"{s}_rec_gt.txt", s) for s in _SPLITS]
            files = [(f, s) for f, s in split_files if f.is_file()]
            if not files and (source / "rec_gt.txt").is_file():
                files = [(source / "rec_gt.txt", None)]
        if not files:
            raise FormatError("no rec_gt.txt (or train_/val_/test_rec_gt.txt) found",
                              path=source)
        base = source if source.is_dir() else source.parent
        locator = ImageLocator([*([images_dir] if images_dir else []), base, base.parent])
        items = []
        for path, split in files:
            for n, ln in enumerate(read_text_lines(path), 1):
                if not ln.strip():
                    continue
                img, sep, text = ln.partition("\t")
                if not sep:
                    raise FormatError("expected 'crop_path<TAB>text'", path=path, line=n)
                found = locator.find(img, label_file=path)
                item = DatasetItem(name=img.replace("\\", "/"), path=found,
                                   split=split)
                size = image_size(item) if found else None
                if size is not None:
                    w, h = size
                    item.annotations.append(Annotation(
                        label=TEXT_LABEL, shape=Quad(((0, 0), (w, 0), (w, h), (0, h))),
                        text=text))
                items.append(item)
        return Dataset(items, [TEXT_LABEL])

    def save(self, dataset: Dataset, dest: Path) -> None:
        write_rec_set(dataset, dest, by_split=True)


def _split_of(path: Path) -> str | None:
    prefix = path.name.split("_", 1)[0]
    return prefix if prefix in _SPLITS else None
