"""Pascal VOC: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`, and the
segmentation masks `SegmentationObject/` and `SegmentationClass/` (palette PNGs).

Boxes from the XML; `difficult`, `truncated` and `occluded` become attributes.
Coordinates are kept as written (no 1-based shift), as LabelImg and CVAT read and write
them. Masks: each instance of `SegmentationObject/<stem>.png` becomes a mask whose class
is the one `SegmentationClass/` gives its pixels (the i-th instance is the XML's i-th
object, and shares its `group`); an image with a class mask only gets one mask per class
present. Class values follow `labelmap.txt` when there is one (CVAT, Datumaro), else VOC's
21 classes; void (255) pixels become an ignore region. Export writes boxes only (other
shapes as their bounding boxes).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polyline
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    contained,
    copy_image,
    default_roots,
    expect_size,
    list_files,
    parse_xml,
    read_text_lines,
    write_xml,
)
from labelpilot.formats.segmaps import IGNORE_LABEL, ClassMap, read_labelmap, read_mask
from labelpilot.imageio import IMAGE_SUFFIXES

_FLAGS = ("difficult", "truncated", "occluded")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOID = 255


class Voc:
    name = "voc"
    description = "Pascal VOC: XML boxes, segmentation masks (read), ImageSets splits"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        ann_dir = source / "Annotations" if (source / "Annotations").is_dir() else source
        xmls = sorted(ann_dir.glob("*.xml"))
        roots = [*([images_dir] if images_dir else []), source / "JPEGImages",
                 *default_roots(source, None)]
        locator = ImageLocator(roots)
        splits: dict[str, str] = {}
        for task in ("Main", "Segmentation"):
            for split in ("train", "val", "test"):
                f = source / "ImageSets" / task / f"{split}.txt"
                if f.is_file():
                    for ln in read_text_lines(f):
                        if ln.strip():
                            splits.setdefault(ln.split()[0], split)
        if not xmls and not splits and not _mask_files(source):
            raise FormatError("no VOC XML files found (looked in Annotations/), no image "
                              "listed in ImageSets/ and no segmentation mask", path=source)
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
        stems = {x.stem for x in xmls}
        warnings = self._unlabeled(source, stems, splits, items)
        by_stem = {x.stem: it for x, it in zip(xmls, items, strict=False)}
        by_stem.update({Path(it.name).stem: it for it in items[len(xmls):]})
        warnings += self._masks(source, by_stem, splits, items, labels)
        return Dataset(items, list(labels), warnings)

    def _masks(self, source: Path, by_stem: dict[str, DatasetItem], splits: dict[str, str],
               items: list[DatasetItem], labels: dict[str, None]) -> list[str]:
        """The segmentation masks, onto their items (an image with masks and no XML is an
        item of its own)."""
        files = _mask_files(source)
        if not files:
            return []
        labelmap = source / "labelmap.txt"
        if labelmap.is_file():
            cmap = read_labelmap(labelmap)
        else:
            cmap = ClassMap("VOC's 21 classes", names=dict(enumerate(VOC_CLASSES)),
                            background={0})
        warnings = []
        for stem in sorted(files):
            item = by_stem.get(stem)
            if item is None:
                found = _jpeg(source, stem)
                if found is None:
                    warnings.append(f"{stem}: a segmentation mask without an image in "
                                    "JPEGImages/; skipped")
                    continue
                item = DatasetItem(name=found.name, path=found, split=splits.get(stem))
                items.append(item)
                by_stem[stem] = item
            found_masks = files[stem]
            item.annotations += _mask_annotations(found_masks.get("SegmentationObject"),
                                                  found_masks.get("SegmentationClass"),
                                                  cmap, item)
            labels.update(dict.fromkeys(a.label for a in item.annotations))
        return warnings

    def _unlabeled(self, source: Path, with_xml: set[str], splits: dict[str, str],
                   items: list[DatasetItem]) -> list[str]:
        """Images an ImageSets list names that have no XML: images without labels (VOC's
        own test set is laid out so); those whose image is missing too are named."""
        warnings = []
        for stem, split in splits.items():
            if stem in with_xml:
                continue
            found = _jpeg(source, stem)
            if found is None:
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
                if isinstance(a.shape, Point | Polyline):
                    dataset.leave_out(f"VOC holds boxes, not {a.shape.type}s")
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


def _jpeg(source: Path, stem: str) -> Path | None:
    """The image of `stem` in JPEGImages/ (any image suffix), if there, inside the folder."""
    images = source / "JPEGImages"
    found = next((images / f"{stem}{ext}" for ext in IMAGE_SUFFIXES
                  if (images / f"{stem}{ext}").is_file()), None)
    return found if found is not None and contained(found, [source]) else None


def _mask_files(source: Path) -> dict[str, dict[str, Path]]:
    """stem -> {"SegmentationObject": png, "SegmentationClass": png}."""
    out: dict[str, dict[str, Path]] = {}
    for kind in ("SegmentationObject", "SegmentationClass"):
        folder = source / kind
        if folder.is_dir():
            for p in list_files(folder, [".png"], roots=[source]):
                out.setdefault(p.stem, {})[kind] = p
    return out


def _mask_annotations(objects: Path | None, classes: Path | None, cmap: ClassMap,
                      item: DatasetItem) -> list[Annotation]:
    cls = read_mask(classes)[0] if classes is not None else None
    obj = read_mask(objects)[0] if objects is not None else None
    base = obj if obj is not None else cls
    assert base is not None
    shape = base.shape
    if cls is not None and obj is not None and cls.shape != obj.shape:
        raise FormatError(f"the class mask is {cls.shape[1]}x{cls.shape[0]} but the object "
                          f"mask {obj.shape[1]}x{obj.shape[0]}", path=classes)
    if item.width is not None and item.height is not None \
            and (item.width, item.height) != (shape[1], shape[0]):
        raise FormatError(f"the mask is {shape[1]}x{shape[0]} but the image "
                          f"{item.width}x{item.height}", path=objects or classes)
    boxes = [a for a in item.annotations if isinstance(a.shape, Box)]
    out = []
    void: np.ndarray = np.equal(base, VOID)
    if obj is not None:
        for v in (int(x) for x in np.unique(obj)):
            if v in (0, VOID):
                continue
            m = obj == v
            if cls is not None:
                values, counts = np.unique(cls[m], return_counts=True)
                k = int(values[np.argmax(counts)])
                if k in (0, VOID) or k not in cmap.names:
                    raise FormatError(f"instance {v}'s pixels have class value {k} in "
                                      f"SegmentationClass, which names no class of "
                                      f"{cmap.source}", path=objects)
                label = cmap.names[k]
            elif v <= len(boxes):
                label = boxes[v - 1].label  # VOC: the i-th instance is the i-th object
            else:
                raise FormatError(f"instance {v} has no class: no SegmentationClass mask "
                                  f"and the XML has {len(boxes)} objects", path=objects)
            group = None
            if v <= len(boxes) and boxes[v - 1].label == label:
                group = boxes[v - 1].group = v
            out.append(Annotation(label=label, shape=Mask.from_array(m.astype(np.uint8)),
                                  group=group))
    else:
        assert cls is not None
        for k in (int(x) for x in np.unique(cls)):
            if k in (0, VOID) or k in cmap.background:
                continue
            if k not in cmap.names:
                raise FormatError(f"class value {k} names no class of {cmap.source} "
                                  f"({len(cmap.names)} classes)", path=classes,
                                  hint="add the class to labelmap.txt")
            out.append(Annotation(label=cmap.names[k],
                                  shape=Mask.from_array((cls == k).astype(np.uint8))))
    if void.any():
        out.append(Annotation(label=IGNORE_LABEL, shape=Mask.from_array(void.astype(np.uint8)),
                              attributes={"ignore": True}))
    return out


def _int(text: str | None, path: Path, where: str) -> int:
    if text is None or not text.strip():
        return 0
    try:
        return int(float(text))
    except ValueError:
        raise FormatError(f"expected an integer, got {text!r}", path=path, where=where) from None
