"""YOLO in the Ultralytics layout: `data.yaml`, `images/<split>/`, `labels/<split>/*.txt`.

Each label line is `class cx cy w h` (detect) or `class x1 y1 x2 y2 ...` (segment), all
normalised to [0, 1]. `yolo` exports boxes (every shape as its bounding box); `yolo-seg`
exports polygons (boxes and quads as their corner polygons; masks traced to their outer
contour). Both read either kind of line.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon
from labelpilot.errors import FormatError, UnsafePathError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    contained,
    copy_image,
    image_size,
    list_files,
    read_text_lines,
    split_named,
)
from labelpilot.imageio import IMAGE_SUFFIXES

MAX_YAML_BYTES = 1 << 20


def _read_yaml(source: Path) -> tuple[Path, dict[str, Any]]:
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        p = source / name
        if p.is_file():
            if p.stat().st_size > MAX_YAML_BYTES:
                raise FormatError(f"over {MAX_YAML_BYTES:,} bytes: not a dataset description",
                                  path=p)
            try:
                text = p.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise FormatError(f"not UTF-8 text (byte {e.start})", path=p) from None
            try:
                # Aliases (&a / *a) can make a few hundred bytes expand into billions of
                # values (a "billion laughs" file): a dataset description needs none.
                for event in yaml.parse(text, Loader=yaml.SafeLoader):
                    if isinstance(event, yaml.AliasEvent):
                        mark = event.start_mark
                        raise FormatError("YAML aliases (*name) are not allowed here", path=p,
                                          line=mark.line + 1 if mark is not None else None)
                doc = yaml.safe_load(text)
            except yaml.YAMLError as e:
                # PyYAML's message spans lines with a caret drawing: its problem and place
                mark = getattr(e, "problem_mark", None)
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise FormatError(f"not valid YAML ({problem})", path=p,
                                  line=mark.line + 1 if mark is not None else None) from None
            if not isinstance(doc, dict):
                raise FormatError("must be a mapping with 'names'", path=p)
            return p, doc
    raise FormatError("no data.yaml found", path=source,
                      hint="a YOLO dataset folder holds data.yaml, images/ and labels/")


def _names(doc: dict[str, Any], path: Path) -> list[str]:
    names = doc.get("names")
    if isinstance(names, dict):
        try:
            values = [names[k] for k in sorted(names, key=int)]
            if not all(isinstance(n, str | int | float) for n in values):
                raise TypeError("not a class name")
            return [str(n) for n in values]
        except (TypeError, ValueError):
            raise FormatError("'names' must map class indices to class names", path=path,
                              where="names") from None
    if isinstance(names, list):
        if not all(isinstance(n, str | int | float) for n in names):
            raise FormatError("'names' must be a list of class names", path=path, where="names")
        return [str(n) for n in names]
    raise FormatError("'names' must be a list or an index -> name mapping", path=path,
                      where="names")


def _entry_path(source: Path, entry: str) -> Path:
    """A train/val/test entry of data.yaml as a path. Roboflow writes `../train/images`
    beside a data.yaml that sits in the dataset folder; Ultralytics then reads
    `train/images`, and so does this."""
    path = source / entry
    if entry.startswith("../") and not (path.exists() and contained(path, [source])):
        inside = source / entry[3:]
        if inside.exists():
            return inside
    return path


def _listed_images(listing: Path, source: Path) -> list[Path]:
    """The images an Ultralytics image list names (`./images/a.jpg` or `images/a.jpg`,
    relative to the list's folder); a line leading outside the dataset is refused."""
    out = []
    for n, ln in enumerate(read_text_lines(listing), 1):
        name = ln.strip()
        if not name:
            continue
        path = listing.parent / (name[2:] if name.startswith("./") else name)
        if PurePosixPath(name).is_absolute() or not contained(path, [source]):
            raise UnsafePathError(f"{listing}, line {n}: {name!r} leads outside the dataset "
                                  "folder", hint="list images inside the folder you import")
        out.append(path)
    return out


class _YoloBase:
    name = ""
    description = ""
    segment = False

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        yaml_path, doc = _read_yaml(source)
        names = _names(doc, yaml_path)
        locator = ImageLocator([source])
        items: list[DatasetItem] = []
        seen_dirs: set[Path] = set()
        for key in ("train", "val", "test"):
            entries = doc.get(key)
            if not entries:
                continue
            for entry in entries if isinstance(entries, list) else [entries]:
                img_dir = _entry_path(source, str(entry))
                if not locator.inside(img_dir):
                    raise FormatError(f"'{key}: {entry}' leads outside the dataset folder",
                                      path=yaml_path, where=key)
                if img_dir.resolve() in seen_dirs:
                    continue
                if img_dir.is_file() and img_dir.suffix.lower() == ".txt":
                    # an image list (Ultralytics): one path a line, relative to the list
                    seen_dirs.add(img_dir.resolve())
                    for img in _listed_images(img_dir, source):
                        items += self._load_dir(img.parent, names, split_named(key),
                                                source, files=[img])
                    continue
                if not img_dir.is_dir():
                    continue
                seen_dirs.add(img_dir.resolve())
                items += self._load_dir(img_dir, names, split_named(key), source)
        if not seen_dirs:
            raise FormatError("none of train/val/test in data.yaml names an existing folder",
                              path=yaml_path)
        return Dataset(items, names)

    def _load_dir(self, img_dir: Path, names: list[str], split: str | None, source: Path,
                  files: list[Path] | None = None) -> list[DatasetItem]:
        # Ultralytics: the label of images/x/a.jpg is labels/x/a.txt (last 'images' swapped).
        parts = list(img_dir.parts)
        idx = max((i for i, p in enumerate(parts) if p == "images"), default=None)
        label_dir = Path(*parts[:idx], "labels", *parts[idx + 1:]) if idx is not None else img_dir
        items = []
        for img in files if files is not None else list_files(img_dir, IMAGE_SUFFIXES,
                                                              roots=[source]):
            rel = img.relative_to(img_dir)
            item = DatasetItem(name=rel.as_posix(), path=img, split=split)
            txt = (label_dir / rel).with_suffix(".txt")
            if txt.is_file():
                if not contained(txt, [source]):
                    raise UnsafePathError(f"{txt} is a link to outside the dataset folder",
                                          hint="copy the file into the folder instead")
                self._read_labels(txt, item, names)
            items.append(item)
        return items

    def _read_labels(self, txt: Path, item: DatasetItem, names: list[str]) -> None:
        lines = [(n, ln.split()) for n, ln in enumerate(read_text_lines(txt), 1) if ln.strip()]
        if not lines:
            return
        size = image_size(item)
        if size is None:
            return  # the image itself is reported as unreadable by the import
        w, h = size
        for n, tok in lines:
            try:
                cls = int(tok[0])
                vals = [float(v) for v in tok[1:]]
            except ValueError:
                raise FormatError(f"expected 'class x y ...' numbers, got {' '.join(tok)!r}",
                                  path=txt, line=n) from None
            if not 0 <= cls < len(names):
                raise FormatError(f"class {cls} is not in data.yaml's {len(names)} names",
                                  path=txt, line=n)
            try:
                if len(vals) == 4:
                    cx, cy, bw, bh = vals
                    shape: Any = Box((cx - bw / 2) * w, (cy - bh / 2) * h,
                                     (cx + bw / 2) * w, (cy + bh / 2) * h)
                elif len(vals) >= 6 and len(vals) % 2 == 0:
                    shape = Polygon(tuple((x * w, y * h) for x, y in
                                          zip(vals[0::2], vals[1::2], strict=True)))
                else:
                    raise FormatError(f"expected 4 box values or an even number (>= 6) of "
                                      f"polygon values after the class, got {len(vals)}",
                                      path=txt, line=n)
            except ValidationError as e:
                raise FormatError(e.message, path=txt, line=n) from None
            item.annotations.append(Annotation(label=names[cls], shape=shape))

    def save(self, dataset: Dataset, dest: Path) -> None:
        names = dataset.all_labels()
        index = {n: i for i, n in enumerate(names)}
        used_splits: set[str] = set()
        for item in dataset.items:
            split = item.split or "train"
            used_splits.add(split)
            copy_image(dataset, item, dest / "images" / split / item.name)
            lines = [line for a in item.annotations
                     if (line := self._line(a, index[a.label], item, dataset)) is not None]
            txt = (dest / "labels" / split / item.name).with_suffix(".txt")
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
        doc: dict[str, Any] = {"path": ".", "train": "images/train"}
        for s in ("val", "test"):
            if s in used_splits:
                doc[s] = f"images/{s}"
        if "val" not in doc:
            doc["val"] = "images/train"  # Ultralytics requires a val entry
        doc["names"] = dict(enumerate(names))
        (dest / "images" / "train").mkdir(parents=True, exist_ok=True)
        (dest / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                                        encoding="utf-8")

    def _line(self, a: Annotation, cls: int, item: DatasetItem, dataset: Dataset
              ) -> str | None:
        w, h = item.width or 1, item.height or 1
        shape = a.shape
        if isinstance(shape, Point):
            dataset.leave_out("YOLO has no line for a point")
            return None
        if self.segment:
            pts = _outline(shape)
            if pts is not None:
                return f"{cls} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in pts)
        x1, y1, x2, y2 = shape.bbox()
        return (f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")


def _outline(shape: Any) -> Any:
    if isinstance(shape, Polygon):
        return shape.points
    if isinstance(shape, Mask):
        import cv2
        import numpy as np

        contours, _ = cv2.findContours(shape.to_array(), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return None
        c = max(contours, key=cv2.contourArea).reshape(-1, 2)
        return c.astype(np.float64).tolist() if len(c) >= 3 else None
    if hasattr(shape, "corners"):
        return shape.corners()
    return None


class Yolo(_YoloBase):
    name = "yolo"
    description = "YOLO (Ultralytics layout, detect): data.yaml + images/ + labels/"


class YoloSeg(_YoloBase):
    name = "yolo-seg"
    description = "YOLO (Ultralytics layout, segment): polygons in labels/"
    segment = True
