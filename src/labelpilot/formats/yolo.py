"""YOLO in the Ultralytics layout: `data.yaml`, `images/<split>/`, `labels/<split>/*.txt`,
and in the Darknet layout ("YOLO 1.1" in CVAT and Datumaro): `obj.data`, `obj.names`,
`train.txt` / `valid.txt` listing images, each image's `.txt` beside it.

Each label line is `class cx cy w h` (detect), `class x1 y1 x2 y2 ...` (segment) or
`class x1 y1 x2 y2 x3 y3 x4 y4` (OBB: a box's four corners), all normalised to [0, 1].
`yolo` exports boxes (every shape as its bounding box); `yolo-seg` exports polygons (boxes
and quads as their corner polygons; masks traced to their outer contour); `yolo-obb`
exports oriented boxes (quads and rotated boxes as their corners, other shapes as their
smallest rotated rectangle). `yolo` and `yolo-seg` read a line of 8 values as a
polygon, `yolo-obb` as an oriented box (a quad); all read the other kinds.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
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
    raise FormatError("no data.yaml (Ultralytics) or obj.data (Darknet) found", path=source,
                      hint="a YOLO dataset folder holds data.yaml, images/ and labels/, or "
                      "obj.data, obj.names and train.txt")


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
    for n, name in _list_entries(listing):
        path = listing.parent / (name[2:] if name.startswith("./") else name)
        if PurePosixPath(name).is_absolute() or not contained(path, [source]):
            raise UnsafePathError(f"{listing}, line {n}: {name!r} leads outside the dataset "
                                  "folder", hint="list images inside the folder you import")
        out.append(path)
    return out


def _darknet_path(source: Path, entry: str) -> Path:
    """A path Darknet's files hold: relative to the darknet folder, so usually under
    `data/` (`data/obj_train_data/a.jpg`); read relative to the dataset folder, where the
    `data/` prefix names the dataset folder itself."""
    entry = entry.strip().replace("\\", "/")
    direct = source / entry
    if entry.startswith("data/") and not direct.exists():
        return source / entry[len("data/"):]
    return direct


def _list_entries(listing: Path) -> list[tuple[int, str]]:
    """The (line number, path) entries of an image list: blank lines skipped, a NUL in a
    path refused."""
    out = []
    for n, ln in enumerate(read_text_lines(listing), 1):
        entry = ln.strip()
        if entry:
            _no_nul(entry, listing, n)
            out.append((n, entry))
    return out


def _no_nul(entry: str, path: Path, line: int) -> None:
    if "\x00" in entry:
        raise FormatError("a path cannot hold a NUL character (is this a binary file?)",
                          path=path, line=line)


def _read_obj_data(path: Path) -> dict[str, str]:
    """`obj.data`: `key = value` lines (`classes`, `train`, `valid`, `names`, `backup`)."""
    out = {}
    for n, ln in enumerate(read_text_lines(path), 1):
        text = ln.split("#", 1)[0].strip()
        if not text:
            continue
        _no_nul(text, path, n)
        key, eq, value = text.partition("=")
        if not eq or not key.strip():
            raise FormatError(f"expected 'key = value', got {text!r}", path=path, line=n)
        out[key.strip()] = value.strip()
    return out


class _YoloBase:
    name = ""
    description = ""
    segment = False
    oriented = False

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        if not any((source / n).is_file() for n in ("data.yaml", "data.yml", "dataset.yaml")) \
                and ((source / "obj.data").is_file() or (source / "obj.names").is_file()):
            return self._load_darknet(source)
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

    def _load_darknet(self, source: Path) -> Dataset:
        """The Darknet layout: the subsets obj.data lists (`train`, `valid`, others
        Datumaro adds), else the `obj_<subset>_data/` folders; an image without a `.txt`
        beside it has no objects."""
        meta = _read_obj_data(source / "obj.data") if (source / "obj.data").is_file() else {}
        names_file = _darknet_path(source, meta.get("names", "obj.names"))
        if not names_file.is_file():
            names_file = source / "obj.names"
        if not names_file.is_file():
            raise FormatError("no obj.names (the class names, one a line)", path=source)
        if not contained(names_file, [source]):
            raise UnsafePathError(f"{source / 'obj.data'}: 'names' leads outside the dataset "
                                  "folder", hint="keep obj.names inside the folder you import")
        names = [ln.strip() for ln in read_text_lines(names_file) if ln.strip()]
        if not names:
            raise FormatError("no class names", path=names_file)
        declared = meta.get("classes")
        warnings = []
        if declared is not None and declared != str(len(names)):
            warnings.append(f"obj.data says classes = {declared} but {names_file.name} names "
                            f"{len(names)}; the names are used")
        lists = {k: v for k, v in meta.items() if k not in ("classes", "names", "backup")}
        items: list[DatasetItem] = []
        if lists:
            for key, entry in lists.items():
                listing = _darknet_path(source, entry)
                if not contained(listing, [source]):
                    raise UnsafePathError(f"{source / 'obj.data'}: '{key}' leads outside the "
                                          "dataset folder", hint="keep the image lists inside")
                if not listing.is_file():
                    warnings.append(f"obj.data: {key} = {entry}: no such file; skipped")
                    continue
                items += self._darknet_list(listing, source, names, split_named(key), warnings)
        else:
            for folder in sorted(source.glob("obj_*_data")):
                if folder.is_dir() and not folder.is_symlink():
                    subset = folder.name[len("obj_"):-len("_data")]
                    items += self._load_dir(folder, names, split_named(subset), source,
                                            beside=True)
        if not items:
            raise FormatError("no images found: obj.data lists none and there is no "
                              "obj_<subset>_data/ folder", path=source)
        return Dataset(items, names, warnings)

    def _darknet_list(self, listing: Path, source: Path, names: list[str],
                      split: str | None, warnings: list[str]) -> list[DatasetItem]:
        items = []
        for n, entry in _list_entries(listing):
            img = _darknet_path(source, entry)
            if PurePosixPath(entry).is_absolute() or not contained(img, [source]):
                raise UnsafePathError(f"{listing}, line {n}: {entry!r} leads outside the "
                                      "dataset folder",
                                      hint="list images inside the folder you import")
            if not img.is_file():
                warnings.append(f"{listing.name}, line {n}: {entry!r} is not in the dataset; "
                                "skipped")
                continue
            items += self._load_dir(img.parent, names, split, source, files=[img], beside=True)
        return items

    def _load_dir(self, img_dir: Path, names: list[str], split: str | None, source: Path,
                  files: list[Path] | None = None, beside: bool = False) -> list[DatasetItem]:
        # Ultralytics: the label of images/x/a.jpg is labels/x/a.txt (last 'images' swapped);
        # Darknet (`beside`): that or, failing it, the .txt beside the image.
        parts = list(img_dir.parts)
        idx = max((i for i, p in enumerate(parts) if p == "images"), default=None)
        label_dir = Path(*parts[:idx], "labels", *parts[idx + 1:]) if idx is not None else img_dir
        items = []
        for img in files if files is not None else list_files(img_dir, IMAGE_SUFFIXES,
                                                              roots=[source]):
            rel = img.relative_to(img_dir)
            item = DatasetItem(name=rel.as_posix(), path=img, split=split)
            txt = (label_dir / rel).with_suffix(".txt")
            if beside and not txt.is_file():
                txt = img.with_suffix(".txt")
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
                raise FormatError(f"class {cls} is not among the dataset's {len(names)} class "
                                  f"names (0-{len(names) - 1})",
                                  path=txt, line=n)
            try:
                if len(vals) == 4:
                    cx, cy, bw, bh = vals
                    shape: Any = Box((cx - bw / 2) * w, (cy - bh / 2) * h,
                                     (cx + bw / 2) * w, (cy + bh / 2) * h)
                elif len(vals) == 8 and self.oriented:
                    shape = Quad(tuple((x * w, y * h) for x, y in
                                       zip(vals[0::2], vals[1::2], strict=True)))
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
        if isinstance(shape, Point | Polyline):
            dataset.leave_out(f"YOLO has no line for a {shape.type}")
            return None
        if self.oriented:
            corners = _oriented(shape)
            if corners is None:
                dataset.leave_out("an empty mask has no oriented box")
                return None
            return f"{cls} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in corners)
        if self.segment:
            pts = _outline(shape)
            if pts is not None:
                return f"{cls} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in pts)
        x1, y1, x2, y2 = shape.bbox()
        return (f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")


def _oriented(shape: Any) -> Any:
    """Four corners: a quad's or rotated box's own, else the smallest rotated rectangle
    around the shape (a box's is itself)."""
    import cv2
    import numpy as np

    if isinstance(shape, Quad | RotatedBox | Box):
        return shape.corners()
    pts = _outline(shape)
    if pts is None:
        return None
    rect = cv2.minAreaRect(np.asarray(pts, np.float32))
    return cv2.boxPoints(rect).astype(np.float64).tolist()


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


class YoloObb(_YoloBase):
    name = "yolo-obb"
    description = "YOLO (Ultralytics layout, OBB): oriented boxes as 4 corners in labels/"
    oriented = True
