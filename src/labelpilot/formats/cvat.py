"""CVAT XML 1.1, for images and for video.

`<image>` elements hold `<box>` (with `rotation`, degrees clockwise about the centre),
`<polygon>`, `<points>` and `<mask>` (runs over the row-major crop `left top width
height`, starting with 0s). A `text` (or `transcription`) attribute is the transcription;
other attributes are kept. `<polyline>` is a polyline. `<tag>` elements are the image's
tags (written back as `<tag>`, their names among the task's labels). `<ellipse>` and
`<skeleton>` are skipped with a warning. The image's `subset` gives its split, and a project export's
`images/<subset>/` folder its file.

CVAT for video 1.1 (`<track>` elements, frames as `images/frame_000000.PNG`): each track's
shapes become per-frame annotations of the frames they stand on (`outside` ends a track
until its next shape), frames between two shapes get the shape interpolated linearly as
CVAT does (boxes, rotated boxes, points and polygons with as many points; other shapes are
held), and the last shape holds to the last frame. Every frame is an image, with or
without annotations; the track id is kept as the attribute `track_id`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    default_roots,
    expect_size,
    parse_xml,
    split_named,
    write_xml,
)
from labelpilot.geometry import rle

_TEXT_ATTRS = ("text", "transcription")
MAX_FRAMES = 1_000_000


def _pts(s: str) -> tuple[tuple[float, float], ...]:
    out = []
    for pair in s.split(";"):
        x, y = pair.split(",")
        out.append((float(x), float(y)))
    return tuple(out)


def _fmt(v: float) -> str:
    return f"{v:.2f}"


class Cvat:
    name = "cvat"
    description = ("CVAT XML 1.1 for images (box, rotated box, polygon, points, mask) and "
                   "for video (tracks as per-frame shapes)")

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        path = source if source.is_file() else source / "annotations.xml"
        if not path.is_file():
            raise FormatError("no annotations.xml found", path=source)
        root = parse_xml(path)
        if root.tag != "annotations":
            raise FormatError(f"the root element is <{root.tag}>, expected <annotations>",
                              path=path)
        tracks = len(root.findall("track"))
        if tracks and root.find("image") is None:
            return _load_video(root, path)
        roots = [*default_roots(source, images_dir), path.parent / "images"]
        # A project export keeps each subset's images in images/<Subset>/, where the same
        # name may be another picture in each subset: look there first.
        locators: dict[str, ImageLocator] = {}

        def locator(subset: str) -> ImageLocator:
            if subset not in locators:
                mine = [path.parent / "images" / subset] if subset else []
                locators[subset] = ImageLocator([*mine, *roots])
            return locators[subset]

        labels = [el.text or "" for el in root.iterfind("meta/*/labels/label/name")]
        ds = Dataset(labels=[n for n in labels if n])
        if tracks:
            ds.warnings.append(f"skipped {tracks} CVAT <track> element(s) (video "
                               "annotation): export the task as 'CVAT for images 1.1'")
        skipped: dict[str, int] = {}
        for i, im in enumerate(root.iterfind("image")):
            where = f"image[{i}]"
            name = im.get("name")
            try:
                w, h = int(im.get("width", "")), int(im.get("height", ""))
            except ValueError:
                raise FormatError("<image> needs integer width and height", path=path,
                                  where=where) from None
            if not name:
                raise FormatError("<image> has no name", path=path, where=where)
            expect_size(w, h, path=path, where=where)
            subset = im.get("subset") or ""
            found = locator(subset).find(name, label_file=path)
            item = DatasetItem(name=name, path=found, width=w,
                               height=h, split=split_named(subset))
            for j, el in enumerate(im):
                if el.tag == "tag":
                    tag = (el.get("label") or "").strip()
                    if not tag:
                        raise FormatError("<tag> has no label", path=path, where=f"{where}/tag[{j}]")
                    if tag not in item.tags:
                        item.tags.append(tag)
                    continue
                ann = _read(el, w, h, path, f"{where}/{el.tag}[{j}]")
                if ann is None:
                    skipped[el.tag] = skipped.get(el.tag, 0) + 1
                else:
                    item.annotations.append(ann)
            ds.items.append(item)
        for tag, n in skipped.items():
            ds.warnings.append(f"skipped {n} CVAT <{tag}> element(s): no LabelPilot equivalent")
        return ds

    def save(self, dataset: Dataset, dest: Path) -> None:
        root = ET.Element("annotations")
        ET.SubElement(root, "version").text = "1.1"
        meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
        ET.SubElement(meta, "name").text = "labelpilot"
        ET.SubElement(meta, "size").text = str(len(dataset.items))
        labels_el = ET.SubElement(meta, "labels")
        has_text = any(a.text is not None for it in dataset.items for a in it.annotations)
        tags = [t for it in dataset.items for t in it.tags]
        for name in dict.fromkeys([*dataset.all_labels(), *tags]):
            lab = ET.SubElement(labels_el, "label")
            ET.SubElement(lab, "name").text = name
            attrs = ET.SubElement(lab, "attributes")
            if has_text:
                at = ET.SubElement(attrs, "attribute")
                ET.SubElement(at, "name").text = "text"
                ET.SubElement(at, "input_type").text = "text"
        for i, item in enumerate(dataset.items):
            copy_image(dataset, item, dest / "images" / item.name)
            im = ET.SubElement(root, "image", id=str(i), name=item.name, width=str(item.width),
                               height=str(item.height))
            if item.split:
                im.set("subset", item.split.capitalize())
            for t in item.tags:
                ET.SubElement(im, "tag", label=t, source="manual")
            for a in item.annotations:
                _write(im, a)
        ET.indent(root)
        dest.mkdir(parents=True, exist_ok=True)
        write_xml(root, dest / "annotations.xml", dataset)


def _read(el: ET.Element, w: int, h: int, path: Path, where: str) -> Annotation | None:
    """A shape element as an annotation (None: no LabelPilot equivalent), bad values
    refused by place."""
    try:
        return _annotation(el, w, h)
    except (ValidationError, ValueError, TypeError) as e:
        msg = e.message if isinstance(e, ValidationError) else f"bad values ({e})"
        raise FormatError(msg, path=path, where=where) from None


def _annotation(el: ET.Element, w: int, h: int) -> Annotation | None:
    label = el.get("label") or ""
    attrs: dict[str, Any] = {a.get("name", ""): a.text or "" for a in el.iterfind("attribute")}
    text = next((attrs.pop(k) for k in _TEXT_ATTRS if k in attrs), None)
    for flag in ("occluded",):
        if el.get(flag) == "1":
            attrs[flag] = True
    shape: Any
    if el.tag == "box":
        x1, y1, x2, y2 = (float(el.get(k, "nan")) for k in ("xtl", "ytl", "xbr", "ybr"))
        rot = float(el.get("rotation") or 0)
        if rot:
            shape = RotatedBox((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, rot)
        else:
            shape = Box(x1, y1, x2, y2)
    elif el.tag == "polygon":
        pts = _pts(el.get("points", ""))
        shape = Quad(pts) if text is not None and len(pts) == 4 else Polygon(pts)
    elif el.tag == "polyline":
        shape = Polyline(_pts(el.get("points", "")))
    elif el.tag == "points":
        pts = _pts(el.get("points", ""))
        if len(pts) != 1:
            return None
        shape = Point(*pts[0])
    elif el.tag == "mask":
        left, top = int(el.get("left", "")), int(el.get("top", ""))
        mw, mh = int(el.get("width", "")), int(el.get("height", ""))
        counts = [int(c) for c in (el.get("rle") or "").split(",") if c.strip()]
        crop = rle.unruns(counts, mw * mh).reshape(mh, mw)
        full = np.zeros((h, w), dtype=np.uint8)
        full[top:top + mh, left:left + mw] = crop[: h - top, : w - left]
        shape = Mask.from_array(full)
    else:
        return None
    group = el.get("group_id")
    score = el.get("score")
    return Annotation(label=label, shape=shape, text=text, attributes=attrs,
                      group=int(group) if group else None,
                      score=float(score) if score else None,
                      status="predicted" if score else "accepted",
                      source="model:cvat@1" if score else "human")


def _meta_int(root: ET.Element, key: str) -> int | None:
    for part in ("task", "job"):
        text = root.findtext(f"meta/{part}/{key}")
        if text is not None and text.strip():
            try:
                return int(text)
            except ValueError:
                raise FormatError(f"<{key}> must be an integer, not {text.strip()!r}",
                                  where=f"meta/{part}/{key}") from None
    return None


def _load_video(root: ET.Element, path: Path) -> Dataset:
    """CVAT for video: tracks over frames, as per-frame annotations (see the module doc)."""
    import re

    try:
        w, h = _meta_int(root, "original_size/width"), _meta_int(root, "original_size/height")
        start, stop = _meta_int(root, "start_frame") or 0, _meta_int(root, "stop_frame")
        size = _meta_int(root, "size")
    except FormatError as e:
        raise FormatError(e.message, path=path, where=e.where) from None
    if w is None or h is None:
        raise FormatError("a CVAT for video file needs the frame size "
                          "(meta/task/original_size)", path=path)
    expect_size(w, h, path=path, where="meta/task/original_size")
    frames: dict[int, Path] = {}
    folder = path.parent / "images"
    if folder.is_dir():
        for file in sorted(folder.iterdir()):
            m = re.fullmatch(r"frame_(\d+)\.\w+", file.name)
            if m and file.is_file() and not file.is_symlink():
                frames.setdefault(int(m.group(1)), file)
    per_frame: dict[int, list[Annotation]] = {}
    # the frames are the exported frame files, else those the task's meta counts
    last = max(frames) if frames else max(
        start, stop if stop is not None else start + (size or 1) - 1)
    if last - start >= MAX_FRAMES:
        raise FormatError(f"the task has {last - start + 1:,} frames, over the limit of "
                          f"{MAX_FRAMES:,}", path=path,
                          hint="export the video in parts (CVAT jobs or frame ranges)")
    skipped: dict[str, int] = {}
    for t, track in enumerate(root.iterfind("track")):
        where = f"track[{t}]"
        label = track.get("label") or ""
        keys: list[tuple[int, bool, Annotation | None]] = []
        for j, el in enumerate(track):
            place = f"{where}/{el.tag}[{j}]"
            frame_text = el.get("frame", "")
            if not frame_text.strip().isdigit() or not start <= int(frame_text) <= last:
                raise FormatError(f"bad values (frame {frame_text!r} is not one of the task's "
                                  f"frames {start}-{last})", path=path, where=place)
            frame = int(frame_text)
            el.set("label", label)
            if track.get("group_id"):
                el.set("group_id", track.get("group_id", ""))
            ann = _read(el, w, h, path, place)
            if ann is None:
                skipped[el.tag] = skipped.get(el.tag, 0) + 1
                continue
            ann.attributes["track_id"] = track.get("id", str(t))
            keys.append((frame, el.get("outside") == "1", ann))
        keys.sort(key=lambda k: k[0])
        for i, (frame, outside, ann) in enumerate(keys):
            if outside or ann is None:
                continue
            nxt = keys[i + 1] if i + 1 < len(keys) else None
            end = nxt[0] if nxt is not None else last + 1
            for f in range(frame, end):
                if f == frame or nxt is None or nxt[1] or nxt[2] is None:
                    shape = ann.shape
                else:
                    shape = _interpolate(ann.shape, nxt[2].shape, (f - frame) / (end - frame))
                per_frame.setdefault(f, []).append(Annotation(
                    label=ann.label, shape=shape, text=ann.text,
                    attributes=dict(ann.attributes), group=ann.group, score=ann.score,
                    status=ann.status, source=ann.source))
    labels = [el.text or "" for el in root.iterfind("meta/*/labels/label/name")]
    ds = Dataset(labels=[n for n in labels if n])
    for f in sorted({*frames, *per_frame} if frames else range(start, last + 1)):
        found = frames.get(f)
        ds.items.append(DatasetItem(name=found.name if found else f"frame_{f:06d}.png",
                                    path=found, width=w, height=h,
                                    annotations=per_frame.get(f, [])))
    for tag, n in skipped.items():
        ds.warnings.append(f"skipped {n} CVAT <{tag}> element(s) of tracks: no LabelPilot "
                           "equivalent")
    return ds


def _interpolate(a: Any, b: Any, t: float) -> Any:
    """The shape a fraction `t` of the way from `a` to `b`, as CVAT interpolates; `a`
    itself where the two cannot be blended (other types, other point counts, masks)."""
    def mix(u: tuple[float, ...], v: tuple[float, ...]) -> list[float]:
        return [x + (y - x) * t for x, y in zip(u, v, strict=True)]

    if type(a) is not type(b):
        return a
    if isinstance(a, Box):
        return Box(*mix((a.x1, a.y1, a.x2, a.y2), (b.x1, b.y1, b.x2, b.y2)))
    if isinstance(a, RotatedBox):
        return RotatedBox(*mix((a.cx, a.cy, a.w, a.h, a.angle),
                               (b.cx, b.cy, b.w, b.h, b.angle)))
    if isinstance(a, Point):
        return Point(*mix((a.x, a.y), (b.x, b.y)))
    if isinstance(a, Polygon | Quad | Polyline) and len(a.points) == len(b.points):
        flat = mix(tuple(c for p in a.points for c in p), tuple(c for p in b.points for c in p))
        return type(a)(tuple(zip(flat[0::2], flat[1::2], strict=True)))
    return a


def _write(im: ET.Element, a: Annotation) -> None:
    shape = a.shape
    common = {"label": a.label, "source": "manual" if a.source == "human" else "auto",
              "occluded": "1" if a.attributes.get("occluded") else "0", "z_order": "0"}
    if a.group is not None:
        common["group_id"] = str(a.group)
    if isinstance(shape, Box):
        el = ET.SubElement(im, "box", common, xtl=_fmt(shape.x1), ytl=_fmt(shape.y1),
                           xbr=_fmt(shape.x2), ybr=_fmt(shape.y2))
    elif isinstance(shape, RotatedBox):
        el = ET.SubElement(im, "box", common, xtl=_fmt(shape.cx - shape.w / 2),
                           ytl=_fmt(shape.cy - shape.h / 2), xbr=_fmt(shape.cx + shape.w / 2),
                           ybr=_fmt(shape.cy + shape.h / 2), rotation=_fmt(shape.angle % 360))
    elif isinstance(shape, Quad | Polygon):
        el = ET.SubElement(im, "polygon", common,
                           points=";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in shape.points))
    elif isinstance(shape, Point):
        el = ET.SubElement(im, "points", common, points=f"{_fmt(shape.x)},{_fmt(shape.y)}")
    elif isinstance(shape, Polyline):
        el = ET.SubElement(im, "polyline", common,
                           points=";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in shape.points))
    else:
        arr = shape.to_array()
        x1, y1, x2, y2 = (int(v) for v in shape.bbox())
        crop = arr[y1:y2, x1:x2]
        counts = rle.runs(crop.ravel())
        el = ET.SubElement(im, "mask", common, rle=", ".join(map(str, counts)), left=str(x1),
                           top=str(y1), width=str(max(1, x2 - x1)), height=str(max(1, y2 - y1)))
    for k, v in a.attributes.items():
        if k != "occluded":
            ET.SubElement(el, "attribute", name=k).text = str(v)
    if a.text is not None:
        ET.SubElement(el, "attribute", name="text").text = a.text
