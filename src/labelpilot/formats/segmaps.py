"""Segmentation maps shared by the mask-reading formats (`masks`, `voc`): reading a mask
image as values (palette PNGs by index, colour PNGs through a colour map), the class maps
datasets ship (Datumaro's `dataset_meta.json`, VOC's `labelmap.txt`, `labels.txt` /
`class_names.txt` as labelme2voc writes them), and rasterising any region shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import NO_AREA, Mask, Polygon, text_corners
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import is_number, open_mask_image, read_json, read_text_lines

IGNORE_LABEL = "ignore"
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
        return read_labelmap(labelmap)
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
            cmap.colors[code(*c)] = value
    return cmap


def read_labelmap(path: Path) -> ClassMap:
    """VOC's `labelmap.txt` (CVAT, Datumaro): `name:r,g,b:parts:actions` a line, `#`
    comments; the line's place among the classes is its value."""
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
            cmap.colors[code(r, g, b)] = value
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


def code(r: Any, g: Any, b: Any) -> int:
    """A colour as one integer, 0xRRGGBB."""
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
            elif c == code(*VOC_VOID) and ignore is not None:
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


def shape_mask(shape: Any, w: int, h: int) -> np.ndarray:
    """Any region shape (mask, polygon with holes, box, quad, rotated box) as a bool mask."""
    from labelpilot.geometry import rle

    if isinstance(shape, Mask):
        return shape.to_array().astype(bool)
    if isinstance(shape, Polygon):
        return rle.from_polygons([shape.points], h, w, shape.holes).astype(bool)
    if shape.type in NO_AREA:
        return np.zeros((h, w), bool)
    return rle.from_polygons([text_corners(shape)], h, w).astype(bool)
