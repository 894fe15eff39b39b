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

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import Annotation, Mask
from labelpilot.errors import FormatError
from labelpilot.formats.base import Dataset, DatasetItem, copy_image, list_files
from labelpilot.formats.segmaps import (
    IGNORE_LABEL,
    VOC_VOID,
    ClassMap,
    code,
    read_class_map,
    read_mask,
    shape_mask,
)
from labelpilot.imageio import IMAGE_SUFFIXES

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


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
                and code(*VOC_VOID) not in cmap.colors:
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
