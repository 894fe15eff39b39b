"""ICDAR 2015 incidental text: one `gt_<image stem>.txt` per image, each line
`x1,y1,x2,y2,x3,y3,x4,y4,transcription` (the transcription may hold commas; `###` marks
text to ignore, kept verbatim). ICDAR 2013 files (`xmin ymin xmax ymax "text"`, space or
comma separated) are read too; a transcription in double quotes loses them. Export
writes ICDAR 2015."""

from __future__ import annotations

import re
from pathlib import Path

from labelpilot.annotations import Annotation, Quad, text_corners
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    default_roots,
    list_files,
    read_text_lines,
)
from labelpilot.imageio import IMAGE_SUFFIXES

TEXT_LABEL = "text"


class Icdar2015:
    name = "icdar"
    description = "ICDAR 2015 gt_<image>.txt quads with transcriptions"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        gts = [source] if source.is_file() else list_files(source, {".txt"}, pattern="gt_*.txt")
        if not gts:
            raise FormatError("no gt_*.txt files found", path=source)
        locator = ImageLocator(default_roots(source, images_dir))
        index = {p.stem: p for p in _images(locator)}
        items = []
        for gt in gts:
            stem = gt.stem.removeprefix("gt_")
            img = index.get(stem)
            item = DatasetItem(name=img.name if img else f"{stem}.jpg",
                               path=img)
            for n, ln in enumerate(read_text_lines(gt), 1):
                if not ln.strip():
                    continue
                try:
                    quad, text = _parse_line(ln)
                except ValidationError as e:
                    raise FormatError(e.message, path=gt, line=n) from None
                item.annotations.append(Annotation(label=TEXT_LABEL, shape=quad, text=text))
            items.append(item)
        return Dataset(items, [TEXT_LABEL])

    def save(self, dataset: Dataset, dest: Path) -> None:
        for item in dataset.items:
            name = item.name.replace("/", "__")
            copy_image(dataset, item, dest / "images" / name)
            lines = []
            for a in item.annotations:
                try:
                    pts = text_corners(a.shape)
                except ValidationError:  # masks, points and lines are not text lines
                    dataset.leave_out(f"ICDAR holds text lines, not {a.shape.type}s")
                    continue
                coords = ",".join(str(round(v)) for p in pts for v in p)
                lines.append(f"{coords},{a.text or ''}\n")
            gt = dest / "gt" / f"gt_{Path(name).stem}.txt"
            gt.parent.mkdir(parents=True, exist_ok=True)
            gt.write_text("".join(lines), encoding="utf-8")


_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
# ICDAR 2013: `xmin ymin xmax ymax "text"`, separated by spaces (train) or commas (test)
_ICDAR13 = re.compile(rf"^{_NUMBER}[,\s]{_NUMBER}[,\s]{_NUMBER}[,\s]{_NUMBER}[,\s]\s*(.*)$")


def _number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _unquote(text: str) -> str:
    """A transcription in double quotes (ICDAR 2013, some 2015 tools) loses them, as the
    peers' converters (MMOCR) strip them; `###` and unquoted text stay verbatim."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def _parse_line(ln: str) -> tuple[Quad, str]:
    parts = ln.split(",", 8)
    if len(parts) >= 8 and all(_number(v) for v in parts[:8]):
        coords = [float(v) for v in parts[:8]]
        quad = Quad(tuple(zip(coords[0::2], coords[1::2], strict=True)))
        return quad, _unquote(parts[8].strip() if len(parts) > 8 else "")
    m = _ICDAR13.match(ln)
    if m is not None:
        x1, y1, x2, y2 = (float(m.group(k)) for k in range(1, 5))
        if not (x2 > x1 and y2 > y1):
            raise ValidationError(f"an ICDAR 2013 box needs xmax > xmin and ymax > ymin, not "
                                  f"{x1:g} {y1:g} {x2:g} {y2:g}")
        quad = Quad(((x1, y1), (x2, y1), (x2, y2), (x1, y2)))
        return quad, _unquote(m.group(5).strip())
    if len(parts) >= 8:
        raise ValidationError("coordinates must be numbers")
    raise ValidationError("expected 8 coordinates and a transcription (ICDAR 2015), or 4 "
                          "and a transcription (ICDAR 2013)")


def _images(locator: ImageLocator) -> list[Path]:
    out = []
    for root in locator.roots:
        out += list_files(root, IMAGE_SUFFIXES, roots=locator.roots)
    return out
