"""`masks`: a folder with `images/` and `masks/`, matched by file stem (how most
segmentation datasets arrive: GrabCut, VOC, ADE-style, Cityscapes-style instance PNGs).

A mask PNG (or BMP) is read as one of:
- binary: values {0, 255} or {0, 1} -> one instance;
- instance ids / palette indices: each value other than 0 and the ignore value is one
  instance (a palette PNG is read by index, not by colour).
Pixels equal to `ignore_value` (`--ignore-value`: 128 in GrabCut, 255 in VOC) become one
annotation with attributes {"ignore": true} (label `ignore`), which evaluation skips.
Labels: `labels.txt` beside `images/` (line v names value v) if present, else `object`.
Export writes instance-id PNGs (8-bit, 16-bit past 254 instances) and `labels.txt` when an
image's instances carry more than one label (value = the label's line); ignore regions are
written with the ignore value (255 unless set).
"""

from __future__ import annotations

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
    list_files,
    open_mask_image,
    read_text_lines,
)
from labelpilot.imageio import IMAGE_SUFFIXES

IGNORE_LABEL = "ignore"
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def read_mask(path: Path) -> np.ndarray:
    """A mask file as a 2-D integer array (palette PNGs by index)."""
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
                    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
                    _, arr = np.unique(codes, return_inverse=True)
                    arr = arr.reshape(codes.shape)
    except ValidationError as e:
        raise FormatError(e.message, path=path) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"not a readable mask image ({e})", path=path) from None
    return arr.astype(np.int64)


class Masks:
    name = "masks"
    description = "images/ + masks/ (binary, instance-id or palette PNGs), matched by stem"

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
        labels_file = source / "labels.txt"
        names = [ln.strip() for ln in read_text_lines(labels_file)] if labels_file.is_file() \
            else []
        masks = {p.stem: p for p in list_files(mask_dir, MASK_SUFFIXES, roots=[source])}
        ds = Dataset()
        used: set[str] = set()
        for img in list_files(img_dir, IMAGE_SUFFIXES, roots=[source]):
            item = DatasetItem(name=img.relative_to(img_dir).as_posix(), path=img)
            mp = masks.get(img.stem)
            if mp is None:
                ds.warnings.append(f"{img.name}: no mask in masks/ (imported without labels)")
            else:
                item.annotations = self._instances(mp, names)
                used.update(a.label for a in item.annotations)
            ds.items.append(item)
        if not ds.items:
            raise FormatError("no images found", path=img_dir)
        orphans = set(masks) - {Path(i.name).stem for i in ds.items}
        if orphans:
            ds.warnings.append(f"{len(orphans)} mask(s) without an image, e.g. "
                               f"{sorted(orphans)[0]}")
        ds.labels = sorted(used)
        return ds

    def _instances(self, path: Path, names: list[str]) -> list[Annotation]:
        arr = read_mask(path)
        if arr.ndim != 2:
            raise FormatError(f"a mask must be one channel, this one has shape {arr.shape}",
                              path=path)
        values = [int(v) for v in np.unique(arr)]
        out = []
        ignore = self.ignore_value
        objects = [v for v in values if v != 0 and v != ignore]
        binary = set(objects) <= {1} or (set(objects) <= {255} and ignore != 255)
        for v in objects:
            if names:
                if v > len(names):
                    raise FormatError(f"value {v} has no line in labels.txt ({len(names)} lines)",
                                      path=path, hint="add a line per mask value to labels.txt")
                label = names[v - 1]
            else:
                label = "object"
            m = (arr == v).astype(np.uint8)
            out.append(Annotation(label=label, shape=Mask.from_array(m),
                                  attributes={} if binary else {"value": v}))
        if ignore is not None and ignore in values:
            m = (arr == ignore).astype(np.uint8)
            out.append(Annotation(label=IGNORE_LABEL, shape=Mask.from_array(m),
                                  attributes={"ignore": True}))
        return out

    def save(self, dataset: Dataset, dest: Path) -> None:
        labels = sorted({a.label for it in dataset.items for a in it.annotations
                         if not a.attributes.get("ignore")})
        by_class = len(labels) > 1
        if by_class:
            (dest).mkdir(parents=True, exist_ok=True)
            (dest / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        ignore = 255 if self.ignore_value is None else self.ignore_value
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
