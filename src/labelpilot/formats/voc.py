"""Pascal VOC: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`.

Boxes only (other shapes are written as their bounding boxes). `difficult`, `truncated`
and `occluded` become attributes. Coordinates are kept as written (no 1-based shift), as
LabelImg and CVAT read and write them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from labelpilot.annotations import Annotation, Box, Point
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    contained,
    copy_image,
    default_roots,
    expect_size,
    parse_xml,
    read_text_lines,
    write_xml,
)
from labelpilot.imageio import IMAGE_SUFFIXES

_FLAGS = ("difficult", "truncated", "occluded")


class Voc:
    name = "voc"
    description = "Pascal VOC XML (boxes)"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        ann_dir = source / "Annotations" if (source / "Annotations").is_dir() else source
        xmls = sorted(ann_dir.glob("*.xml"))
        roots = [*([images_dir] if images_dir else []), source / "JPEGImages",
                 *default_roots(source, None)]
        locator = ImageLocator(roots)
        splits: dict[str, str] = {}
        for split in ("train", "val", "test"):
            f = source / "ImageSets" / "Main" / f"{split}.txt"
            if f.is_file():
                for ln in read_text_lines(f):
                    if ln.strip():
                        splits[ln.split()[0]] = split
        if not xmls and not splits:
            raise FormatError("no VOC XML files found (looked in Annotations/) and no image "
                              "listed in ImageSets/Main/", path=source)
        items = []
        labels: dict[str, None] = {}
        for xml in xmls:
            root = parse_xml(xml)
            fname = root.findtext("filename") or f"{xml.stem}.jpg"
            w = _int(root.findtext("size/width"), xml, "size/width")
            h = _int(root.findtext("size/height"), xml, "size/height")
            if w and h:
                expect_size(w, h, path=xml, where="size")
            found = locator.find(fname, label_file=xml)
            item = DatasetItem(name=fname, path=found,
                               width=w or None, height=h or None, split=splits.get(xml.stem))
            for i, obj in enumerate(root.iter("object")):
                where = f"object[{i}]"
                label = (obj.findtext("name") or "").strip()
                if not label:
                    raise FormatError("object has no <name>", path=xml, where=where)
                bb = obj.find("bndbox")
                if bb is None:
                    raise FormatError("object has no <bndbox>", path=xml, where=where)
                try:
                    vals = [float(bb.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
                    box = Box(*vals)
                except (ValueError, ValidationError) as e:
                    msg = e.message if isinstance(e, ValidationError) else "bndbox values must be numbers"
                    raise FormatError(msg, path=xml, where=where + "/bndbox") from None
                attrs: dict[str, object] = {}
                for k in _FLAGS:
                    v = (obj.findtext(k) or "").strip().lower()
                    if v in ("0", "1", "false", "true"):
                        attrs[k] = int(v in ("1", "true"))
                    elif v:
                        raise FormatError(f"<{k}> must be 0 or 1, not {v!r}", path=xml,
                                          where=f"{where}/{k}")
                pose = obj.findtext("pose")
                if pose and pose != "Unspecified":
                    attrs["pose"] = pose
                labels[label] = None
                item.annotations.append(Annotation(label=label, shape=box, attributes=attrs))
            items.append(item)
        warnings = self._unlabeled(source, {x.stem for x in xmls}, splits, items)
        return Dataset(items, list(labels), warnings)

    def _unlabeled(self, source: Path, with_xml: set[str], splits: dict[str, str],
                   items: list[DatasetItem]) -> list[str]:
        """Images an ImageSets list names that have no XML: images without labels (VOC's
        own test set is laid out so); those whose image is missing too are named."""
        warnings = []
        images = source / "JPEGImages"
        for stem, split in splits.items():
            if stem in with_xml:
                continue
            found = next((images / f"{stem}{ext}" for ext in IMAGE_SUFFIXES
                          if (images / f"{stem}{ext}").is_file()), None)
            if found is None or not contained(found, [source]):
                warnings.append(f"ImageSets/Main/{split}.txt: {stem!r} has neither an XML in "
                                "Annotations/ nor an image in JPEGImages/; skipped")
                continue
            items.append(DatasetItem(name=found.name, path=found, split=split))
        return warnings

    def save(self, dataset: Dataset, dest: Path) -> None:
        splits: dict[str, list[str]] = {}
        for item in dataset.items:
            stem = Path(item.name).with_suffix("").as_posix().replace("/", "__")
            fname = f"{stem}{item.suffix}"
            copy_image(dataset, item, dest / "JPEGImages" / fname)
            if item.split:
                splits.setdefault(item.split, []).append(stem)
            root = ET.Element("annotation")
            ET.SubElement(root, "folder").text = "JPEGImages"
            ET.SubElement(root, "filename").text = fname
            size = ET.SubElement(root, "size")
            ET.SubElement(size, "width").text = str(item.width)
            ET.SubElement(size, "height").text = str(item.height)
            ET.SubElement(size, "depth").text = "3"
            ET.SubElement(root, "segmented").text = "0"
            for a in item.annotations:
                if isinstance(a.shape, Point):
                    dataset.leave_out("VOC holds boxes, not points")
                    continue
                obj = ET.SubElement(root, "object")
                ET.SubElement(obj, "name").text = a.label
                ET.SubElement(obj, "pose").text = str(a.attributes.get("pose", "Unspecified"))
                for k in _FLAGS:
                    ET.SubElement(obj, k).text = str(int(a.attributes.get(k, 0)))
                bb = ET.SubElement(obj, "bndbox")
                for k, v in zip(("xmin", "ymin", "xmax", "ymax"), a.shape.bbox(), strict=True):
                    ET.SubElement(bb, k).text = f"{v:.3f}".rstrip("0").rstrip(".")
            ET.indent(root)
            out = dest / "Annotations" / f"{stem}.xml"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_xml(root, out, dataset)
        for split, stems in splits.items():
            f = dest / "ImageSets" / "Main" / f"{split}.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")


def _int(text: str | None, path: Path, where: str) -> int:
    if text is None or not text.strip():
        return 0
    try:
        return int(float(text))
    except ValueError:
        raise FormatError(f"expected an integer, got {text!r}", path=path, where=where) from None
