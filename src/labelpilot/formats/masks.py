"""`masks`: a folder with `images/` and `masks/`, matched by file stem (how most
segmentation datasets arrive: GrabCut, VOC, ADE-style, Cityscapes-style instance PNGs,
Datumaro's "common semantic segmentation", labelme2voc output renamed).

A mask PNG (or BMP) is read as one of:
- binary: values {0, 255} or {0, 1} -> one instance;
- instance ids / palette indices: each value other than 0 and the ignore value is one
  instance (a palette PNG is read by index, not by colour);
- class values, when a class map names them: one annotation per class present;
- colour-coded (RGB): through the class map's colours; without one, black is background and
  each other colour one region (attribute `color`).
The class map, first found of:
- `dataset_meta.json` (Datumaro): `label_map` {"0": "background", "1": "cat"} or `labels`,
  optional `segmentation_colors` ([r, g, b] per label, in order) and `background_label`;
- `labelmap.txt` (VOC as CVAT and Datumaro write it): `name:r,g,b:parts:actions` a line,
  the line's place is its value;
- `labels.txt` or `class_names.txt`: a name a line. When the first line is `_background_`
  (labelme2voc) line i names value i, else line v names value v (1-based); a leading
  `__ignore__` line makes 255 the ignore value; a file naming one class makes every value
  an instance of it.
Classes named background (`background`, `_background_`) are not objects.
Pixels equal to the ignore value (`--ignore-value`: 128 in GrabCut, 255 in VOC) become one
annotation with attributes {"ignore": true} (label `ignore`), which evaluation skips.
Export writes instance-id PNGs (8-bit, 16-bit past 254 instances), or class values when
an image's instances carry more than one label, and `labels.txt` in the labelme2voc form
(`__ignore__` when ignore regions were written, `_background_`, the classes), so the
export imports back with default options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import Annotation, Mask
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    copy_image,
    is_number,
    list_files,
    open_mask_image,
    read_json,
    read_text_lines,
)
from labelpilot.imageio import IMAGE_SUFFIXES

IGNORE_LABEL = "ignore"
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
BACKGROUND_NAMES = {"background", "_background_", "__background__"}
VOC_VOID = (224, 224, 192)  # the colour VOC's palette gives its 255 (void) pixels


@dataclass
class ClassMap:
    """What a dataset's class file says: mask value -> class, background values, colours."""

    source: str
    names: dict[int, str] = field(default_factory=dict)
    background: set[int] = field(default_factory=set)
    colors: dict[int, int] = field(default_factory=dict)  # 0xRRGGBB -> value
    ignore: int | None = None
    one_class: bool = False  # every non-background value is an instance of the one class


def _is_background(name: str) -> bool:
    return name.strip().lower() in BACKGROUND_NAMES


def read_class_map(source: Path) -> ClassMap | None:
    """The class map of a masks folder (see the module's doc), or None."""
    meta = source / "dataset_meta.json"
    if meta.is_file():
        return _dataset_meta(meta)
    labelmap = source / "labelmap.txt"
    if labelmap.is_file():
        return _labelmap(labelmap)
    for name in ("labels.txt", "class_names.txt"):
        if (source / name).is_file():
            return _names_file(source / name)
    return None


def _dataset_meta(path: Path) -> ClassMap:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise FormatError("must be an object with 'label_map' or 'labels'", path=path)
    cmap = ClassMap(path.name)
    label_map, labels = doc.get("label_map"), doc.get("labels")
    if isinstance(label_map, dict):
        for k, v in label_map.items():
            if not (isinstance(k, str) and k.strip().isdigit() and isinstance(v, str) and v):
                raise FormatError("'label_map' must map mask values (\"0\", \"1\", ...) to "
                                  f"class names, not {k!r}: {v!r}", path=path,
                                  where="label_map")
            cmap.names[int(k)] = v
    elif isinstance(labels, list) and all(isinstance(v, str) and v for v in labels):
        cmap.names = dict(enumerate(labels))
    else:
        raise FormatError("needs 'label_map' (value -> class name) or 'labels' (a list)",
                          path=path)
    bg = doc.get("background_label")
    if bg is not None:
        if not (str(bg).isdigit() and int(bg) in cmap.names):
            raise FormatError(f"'background_label' {bg!r} is not a value of the label map",
                              path=path, where="background_label")
        cmap.background.add(int(bg))
    cmap.background |= {v for v, n in cmap.names.items() if _is_background(n)}
    colors = doc.get("segmentation_colors")
    if colors is not None:
        if not (isinstance(colors, list) and len(colors) == len(cmap.names)):
            raise FormatError(f"'segmentation_colors' must hold one [r, g, b] per label "
                              f"({len(cmap.names)})", path=path, where="segmentation_colors")
        for i, (value, c) in enumerate(zip(cmap.names, colors, strict=True)):
            if not (isinstance(c, list) and len(c) == 3 and all(
                    is_number(x) and 0 <= x <= 255 for x in c)):
                raise FormatError("a colour must be [r, g, b] with values 0-255",
                                  path=path, where=f"segmentation_colors[{i}]")
            cmap.colors[_code(*c)] = value
    return cmap


def _labelmap(path: Path) -> ClassMap:
    cmap = ClassMap(path.name)
    value = 0
    for n, ln in enumerate(read_text_lines(path), 1):
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        name, _, rest = ln.partition(":")
        color = rest.split(":", 1)[0].strip()
        if not name.strip():
            raise FormatError("expected 'name:r,g,b:parts:actions'", path=path, line=n)
        cmap.names[value] = name.strip()
        if color:
            try:
                r, g, b = (int(x) for x in color.split(","))
                if not all(0 <= x <= 255 for x in (r, g, b)):
                    raise ValueError
            except ValueError:
                raise FormatError(f"the colour must be r,g,b with values 0-255, not {color!r}",
                                  path=path, line=n) from None
            cmap.colors[_code(r, g, b)] = value
        value += 1
    if not cmap.names:
        raise FormatError("names no class", path=path)
    cmap.background = {v for v, nm in cmap.names.items() if _is_background(nm)}
    return cmap


def _names_file(path: Path) -> ClassMap:
    lines = [ln.strip() for ln in read_text_lines(path)]
    while lines and not lines[-1]:
        lines.pop()
    cmap = ClassMap(path.name)
    if lines and lines[0] == "__ignore__":  # labelme2voc: -1, written as 255
        cmap.ignore = 255
        lines = lines[1:]
    if lines and _is_background(lines[0]):
        cmap.names = dict(enumerate(lines))
        cmap.background = {0}
    else:
        cmap.names = {i + 1: n for i, n in enumerate(lines)}
    for v, n in cmap.names.items():
        if not n:
            raise FormatError("an empty line names no class", path=path,
                              line=v + (cmap.ignore is not None) + (0 in cmap.background))
    objects = [v for v in cmap.names if v not in cmap.background]
    cmap.one_class = len(objects) == 1
    return cmap


def _code(r: Any, g: Any, b: Any) -> int:
    return (int(r) << 16) | (int(g) << 8) | int(b)


def read_mask(path: Path, cmap: ClassMap | None = None, ignore: int | None = None
              ) -> tuple[np.ndarray, dict[int, str]]:
    """A mask file as a 2-D integer array (palette PNGs by index), and for a colour mask
    read without a colour map, each value's colour as #rrggbb."""
    colours: dict[int, str] = {}
    try:
        with open_mask_image(path) as im:
            im.load()
            if im.mode in ("P", "L", "I", "I;16", "1"):
                arr = np.array(im)
            else:  # RGB(A) masks: a grey image saved in colour, or colour-coded classes
                rgb = np.array(im.convert("RGB")).astype(np.int64)
                if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    arr = rgb[..., 0]
                else:
                    arr, colours = _decode_colours(path, rgb, cmap, ignore)
    except ValidationError as e:
        raise FormatError(e.message, path=path) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"not a readable mask image ({e})", path=path) from None
    return arr.astype(np.int64), colours


def _decode_colours(path: Path, rgb: np.ndarray, cmap: ClassMap | None, ignore: int | None
                    ) -> tuple[np.ndarray, dict[int, str]]:
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    found, inverse = np.unique(codes, return_inverse=True)
    inverse = inverse.reshape(codes.shape)
    if cmap is not None and cmap.colors:
        lut = np.zeros(len(found), np.int64)
        for i, c in enumerate(found.tolist()):
            if c in cmap.colors:
                lut[i] = cmap.colors[c]
            elif c == _code(*VOC_VOID) and ignore is not None:
                lut[i] = ignore
            else:
                y, x = (int(v[0]) for v in np.nonzero(codes == c))
                raise FormatError(f"colour #{c:06x} at ({x}, {y}) is not in {cmap.source}",
                                  path=path, hint=f"add the class of that colour to "
                                  f"{cmap.source}")
        return lut[inverse], {}
    if cmap is not None:
        raise FormatError(f"a colour mask, but {cmap.source} gives no colours", path=path,
                          hint="give the colours in dataset_meta.json (segmentation_colors) "
                          "or labelmap.txt (name:r,g,b::)")
    # no class map: black is background, each other colour one region
    values = np.zeros(len(found), np.int64)
    colours = {}
    n = 0
    for i, c in enumerate(found.tolist()):
        if c:
            n += 1
            values[i] = n
            colours[n] = f"#{c:06x}"
    return values[inverse], colours


class Masks:
    name = "masks"
    description = "images/ + masks/ (binary, instance-id, class or colour PNGs), by stem"

    def __init__(self, ignore_value: int | None = None) -> None:
        self.ignore_value = ignore_value

    def with_options(self, ignore_value: int | None = None, **unknown: Any) -> Masks:
        if unknown:
            raise FormatError(f"the masks format has no option {', '.join(unknown)}")
        return Masks(ignore_value)

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        img_dir = images_dir or source / "images"
        mask_dir = source / "masks"
        for d, what in ((img_dir, "images"), (mask_dir, "masks")):
            if not d.is_dir():
                raise FormatError(f"no {what}/ folder", path=source,
                                  hint="the masks format wants images/ and masks/ side by side")
        cmap = read_class_map(source)
        masks = {p.stem: p for p in list_files(mask_dir, MASK_SUFFIXES, roots=[source])}
        ds = Dataset()
        used: set[str] = set()
        for img in list_files(img_dir, IMAGE_SUFFIXES, roots=[source]):
            item = DatasetItem(name=img.relative_to(img_dir).as_posix(), path=img)
            mp = masks.get(img.stem)
            if mp is None:
                ds.warnings.append(f"{img.name}: no mask in masks/ (imported without labels)")
            else:
                item.annotations = self._instances(mp, cmap)
                used.update(a.label for a in item.annotations)
            ds.items.append(item)
        if not ds.items:
            raise FormatError("no images found", path=img_dir)
        orphans = set(masks) - {Path(i.name).stem for i in ds.items}
        if orphans:
            ds.warnings.append(f"{len(orphans)} mask(s) without an image, e.g. "
                               f"{sorted(orphans)[0]}")
        declared = [n for v, n in sorted(cmap.names.items()) if v not in cmap.background] \
            if cmap else []
        ds.labels = list(dict.fromkeys([*declared, *sorted(used)]))
        return ds

    def _instances(self, path: Path, cmap: ClassMap | None) -> list[Annotation]:
        ignore = self.ignore_value if self.ignore_value is not None else (
            cmap.ignore if cmap is not None else None)
        if ignore is None and cmap is not None and cmap.colors \
                and _code(*VOC_VOID) not in cmap.colors:
            ignore = 255  # VOC's void colour, read as 255, is the ignore region
        arr, colours = read_mask(path, cmap, ignore)
        if arr.ndim != 2:
            raise FormatError(f"a mask must be one channel, this one has shape {arr.shape}",
                              path=path)
        values = [int(v) for v in np.unique(arr)]
        background = cmap.background if cmap is not None else set()
        objects = [v for v in values if v != 0 and v != ignore and v not in background]
        binary = set(objects) <= {1} or (set(objects) <= {255} and ignore != 255)
        out = []
        for v in objects:
            attributes: dict[str, Any] = {}
            if cmap is None:
                label = "object"
                if colours:
                    attributes = {"color": colours[v]}
                elif not binary:
                    attributes = {"value": v}
            elif cmap.one_class:
                label = next(n for k, n in cmap.names.items() if k not in cmap.background)
                if not binary:
                    attributes = {"value": v}
            else:
                if v not in cmap.names:
                    what = "line" if cmap.source.endswith(".txt") else "class"
                    raise FormatError(f"value {v} has no {what} in {cmap.source} "
                                      f"({len(cmap.names)} classes)", path=path,
                                      hint=f"add a class per mask value to {cmap.source}"
                                      + (" or import with --ignore-value 255" if v == 255
                                         else ""))
                label = cmap.names[v]
            m = (arr == v).astype(np.uint8)
            out.append(Annotation(label=label, shape=Mask.from_array(m), attributes=attributes))
        if ignore is not None and ignore in values:
            m = (arr == ignore).astype(np.uint8)
            out.append(Annotation(label=IGNORE_LABEL, shape=Mask.from_array(m),
                                  attributes={"ignore": True}))
        return out

    def save(self, dataset: Dataset, dest: Path) -> None:
        labels = sorted({a.label for it in dataset.items for a in it.annotations
                         if not a.attributes.get("ignore")})
        by_class = len(labels) > 1
        ignore = 255 if self.ignore_value is None else self.ignore_value
        wrote_ignore = False
        for item in dataset.items:
            copy_image(dataset, item, dest / "images" / item.name)
            if item.width is None or item.height is None:
                continue
            arr = np.zeros((item.height, item.width), np.int32)
            n = 0
            for a in item.annotations:
                m = _raster(a, item.width, item.height)
                if a.attributes.get("ignore"):
                    arr[m & (arr == 0)] = ignore
                    wrote_ignore = wrote_ignore or bool(m.any())
                    continue
                if not m.any():
                    dataset.leave_out(f"a {a.shape.type} covers no pixel")
                    continue
                n += 1
                value = labels.index(a.label) + 1 if by_class else n
                if value == ignore:
                    value += 1
                arr[m] = value
            dtype = np.uint8 if arr.max() < 256 else np.uint16
            target = dest / "masks" / (Path(item.name).with_suffix(".png"))
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), arr.astype(dtype))
        if labels or wrote_ignore:
            if wrote_ignore and ignore != 255:
                dataset.warnings.append(f"ignore regions were written as {ignore}: import "
                                        f"with --ignore-value {ignore}")
            head = ["__ignore__"] if wrote_ignore and ignore == 255 else []
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "labels.txt").write_text(
                "\n".join([*head, "_background_", *labels]) + "\n", encoding="utf-8")


def _raster(a: Annotation, w: int, h: int) -> np.ndarray:
    return shape_mask(a.shape, w, h)


def shape_mask(shape: Any, w: int, h: int) -> np.ndarray:
    """Any region shape (mask, polygon with holes, box, quad, rotated box) as a bool mask."""
    from labelpilot.annotations import Polygon, text_corners
    from labelpilot.geometry import rle

    if isinstance(shape, Mask):
        return shape.to_array().astype(bool)
    if isinstance(shape, Polygon):
        return rle.from_polygons([shape.points], h, w, shape.holes).astype(bool)
    if shape.type == "point":
        return np.zeros((h, w), bool)
    return rle.from_polygons([text_corners(shape)], h, w).astype(bool)
