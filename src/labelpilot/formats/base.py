"""What every format module shares: the in-memory dataset, the Format protocol, reading
helpers (JSON, text, XML), image lookup with safe paths, writing helpers."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import orjson
from defusedxml import ElementTree as SafeET

from labelpilot.annotations import Annotation
from labelpilot.errors import FormatError, UnsafePathError, ValidationError
from labelpilot.imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES


@dataclass(slots=True)
class DatasetItem:
    """One image and its labels, as a format reads or writes it.

    Args:
        name: relative POSIX path used as the image's file name in exports.
        path: where the image bytes are (None when `data` holds them).
        data: embedded image bytes (LabelMe `imageData`).
        width, height: the size the label file states, if any.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    width: int | None = None
    height: int | None = None
    split: str | None = None
    review_state: str | None = None
    annotations: list[Annotation] = field(default_factory=list)
    # classification tags of the whole image (CVAT <tag>, Label Studio choices)
    tags: list[str] = field(default_factory=list)

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix


@dataclass
class Dataset:
    """Images with labels, the label classes in order, and warnings met while reading."""

    items: list[DatasetItem] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Savers write the image files too unless this is off (a labels-only export).
    include_images: bool = True
    # Called after each image is in place: (item, whether it was written now).
    image_written: Callable[[DatasetItem, bool], None] | None = None
    # Where the export will be once in place (savers write into a staging folder first):
    # for formats that record absolute paths.
    destination: Path | None = None
    # What a saver could not write, by reason: the export counts what it wrote.
    left_out: dict[str, int] = field(default_factory=dict)
    # Keypoint classes' schemas, COCO's way: label -> {"keypoints": [names], "skeleton":
    # [[i, j], ...] (1-based)}; their points carry {"keypoint": name} and share a group.
    keypoints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def leave_out(self, reason: str) -> None:
        """A saver skips one annotation the format cannot hold, for `reason`."""
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    def all_labels(self) -> list[str]:
        """Declared classes first, then any others used, in order of first use."""
        names = dict.fromkeys(self.labels)
        for item in self.items:
            for a in item.annotations:
                names.setdefault(a.label)
        return list(names)


class Format(Protocol):
    name: str
    description: str

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset: ...

    def save(self, dataset: Dataset, dest: Path) -> None: ...


# --- reading helpers ----------------------------------------------------------------


# What datasets call their subsets (CVAT's Train/Validation, Roboflow's valid/, ...), as
# LabelPilot's splits.
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test"}


def split_named(name: str) -> str | None:
    """The split a subset or folder name stands for (case-insensitive); None for others
    (`default`, `unlabeled`)."""
    return _SPLIT_WORDS.get(name.lower())


def is_number(v: Any) -> bool:
    """A JSON number: an int or a float, not a bool (which Python counts as an int)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise FormatError(f"not valid JSON ({e})", path=path) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror})", path=path) from None


# Characters XML 1.0 cannot hold: C0 controls but tab, newline and return; lone surrogates.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def write_xml(root: ET.Element, path: Path, dataset: Dataset) -> None:
    """Write an XML file that parses: characters XML cannot hold (control characters a
    label file brought in) become U+FFFD, and the export says how many values changed."""
    changed = 0
    for el in root.iter():
        if el.text and _NOT_XML.search(el.text):
            el.text, changed = _NOT_XML.sub("\ufffd", el.text), changed + 1
        for k, v in el.attrib.items():
            if _NOT_XML.search(v):
                el.set(k, _NOT_XML.sub("\ufffd", v))
                changed += 1
    if changed:
        dataset.warnings.append(f"{path.name}: {changed} value(s) held characters XML cannot "
                                "hold (control characters); written as U+FFFD")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def parse_xml(path: Path) -> ET.Element:
    try:
        return SafeET.parse(path).getroot()  # type: ignore[no-any-return]
    except ET.ParseError as e:
        line = e.position[0] if e.position else None
        raise FormatError(f"not well-formed XML ({e.msg if hasattr(e, 'msg') else e})",
                          path=path, line=line) from None
    except Exception as e:  # defusedxml refuses entity tricks with its own errors
        raise FormatError(f"refused XML ({type(e).__name__}: {e})", path=path) from None


def read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text (byte {e.start})", path=path) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror})", path=path) from None


def shape_error(path: Path, where: str | None = None, line: int | None = None
                ) -> Callable[[ValidationError], FormatError]:
    def wrap(e: ValidationError) -> FormatError:
        return FormatError(e.message, path=path, where=where, line=line)
    return wrap


def expect(cond: bool, message: str, *, path: Path, where: str | None = None,
           line: int | None = None) -> None:
    if not cond:
        raise FormatError(message, path=path, where=where, line=line)


def expect_size(width: Any, height: Any, *, path: Path, where: str | None = None) -> None:
    """A size a label file states: whole and positive, and within the pixel limit, checked
    before anything of that size (a mask) is made."""
    expect(isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0,
           "the image size must be positive integers", path=path, where=where)
    if width * height > DEFAULT_MAX_PIXELS:
        raise FormatError(f"states an image of {width}x{height} = {width * height:,} pixels, "
                          f"over the limit of {DEFAULT_MAX_PIXELS:,}", path=path, where=where)


def open_mask_image(data: bytes | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """A mask image opened (PIL, not yet decoded) once its header's size is within
    `max_pixels`: a small file can declare a huge image."""
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ValidationError(f"the mask image is {w}x{h} = {w * h:,} pixels, over the limit "
                              f"of {max_pixels:,}")
    return im


class ImageLocator:
    """Finds image files named by a label file, never outside the allowed roots.

    Names are tried as relative paths under each root, then by base name anywhere under the
    roots (label files often carry paths from another machine). The roots are walked once;
    links are followed only when they stay inside the roots.
    """

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = [r.resolve() for r in dict.fromkeys(roots) if r.is_dir()]
        self._files: dict[str, bool] | None = None  # absolute path -> is a symlink
        self._by_name: dict[str, str] = {}

    def _index(self) -> dict[str, bool]:
        if self._files is None:
            self._files = {}
            # Walk only the top-most roots: the others lie inside them.
            tops = [r for r in self.roots if not any(r != o and r.is_relative_to(o)
                                                     for o in self.roots)]
            stack = [str(t) for t in tops]
            while stack:
                d = stack.pop()
                try:
                    entries = list(os.scandir(d))
                except OSError:
                    continue
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES:
                        self._files[e.path] = e.is_symlink()
                        self._by_name.setdefault(e.name, e.path)
        return self._files

    def inside(self, path: Path) -> bool:
        return contained(path, self.roots)

    def _checked(self, path: str, name: str, label_file: Path) -> Path:
        p = Path(path)
        if self._index()[path] and not self.inside(p):
            raise UnsafePathError(f"{label_file}: image {name!r} is a link to outside the "
                                  "import folder", hint="copy the image into the folder instead")
        return p

    def find(self, name: str, *, label_file: Path) -> Path | None:
        """The image file for `name`, or None (the import then reports it missing by name:
        a name that is not found is never read as a path); raises UnsafePathError if
        `name` leads out of the roots."""
        rel = name.replace("\\", "/")
        if rel.startswith("file://"):
            rel = rel[len("file://"):]
        p = PurePosixPath(rel)
        files = self._index()
        if not p.is_absolute():
            for root in self.roots:
                cand = os.path.normpath(os.path.join(root, *p.parts))
                if cand in files:
                    return self._checked(cand, name, label_file)
        if ".." in p.parts:
            raise UnsafePathError(
                f"{label_file}: image path {name!r} leads outside the import folder",
                hint="keep images inside the folder you import")
        found = self._by_name.get(p.name)
        return self._checked(found, name, label_file) if found is not None else None


def contained(path: Path, roots: Iterable[Path]) -> bool:
    """True when `path`, its links resolved, lies inside one of `roots` (resolved too)."""
    real = path.resolve()
    return any(real == r or real.is_relative_to(r) for r in (r.resolve() for r in roots))


def list_files(folder: Path, suffixes: Iterable[str], *, pattern: str = "*",
               roots: Iterable[Path] | None = None) -> list[Path]:
    """Files under `folder` (recursively) whose name matches `pattern` and whose suffix is
    one of `suffixes`, sorted. Linked folders are not entered; a linked file must lead
    inside `roots` (default: `folder`), else UnsafePathError names it: an import reads
    nothing outside the folder it was given."""
    allowed = {s.lower() for s in suffixes}
    keep = [folder] if roots is None else list(roots)
    out = []
    for p in sorted(folder.rglob(pattern)):  # rglob does not enter linked folders
        if p.suffix.lower() not in allowed or not p.is_file():
            continue
        if p.is_symlink() and not contained(p, keep):
            raise UnsafePathError(f"{p} is a link to outside the import folder",
                                  hint="copy the file into the folder instead")
        out.append(p)
    return out


def default_roots(source: Path, images_dir: Path | None) -> list[Path]:
    """Where the images of an import from `source` (what the user named: a folder or a
    label file) may lie: `images_dir`, the folder, or the label file's folder, and the
    dataset folder above an `annotations/` or `labels/` folder. Never above what the user
    named: a label file found inside a folder does not widen the import to the folder's
    parent."""
    roots = [images_dir] if images_dir else []
    base = source if source.is_dir() else source.parent
    roots.append(base)
    if base.name.lower() in ("annotations", "labels"):
        roots.append(base.parent)
    return roots


# --- writing helpers ----------------------------------------------------------------


def copy_image(dataset: Dataset, item: DatasetItem, target: Path) -> None:
    """Write the item's image to `target`, unless the export is of labels only.

    The file is written under a temporary name and renamed, so a file that exists is whole:
    a resumed export skips it. `dataset.image_written` hears of every image, written or not.
    """
    if not dataset.include_images:
        return
    wrote = False
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        if item.data is not None:
            tmp.write_bytes(item.data)
        else:
            assert item.path is not None
            shutil.copyfile(item.path, tmp)
        os.replace(tmp, target)
        wrote = True
    if dataset.image_written is not None:
        dataset.image_written(item, wrote)


def write_json(path: Path, obj: Any, *, indent: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = orjson.OPT_INDENT_2 if indent else 0
    path.write_bytes(orjson.dumps(obj, option=opts | orjson.OPT_SERIALIZE_NUMPY))


def image_size(item: DatasetItem) -> tuple[int, int] | None:
    """The displayed size from the image header; None if unreadable (the import's image
    check then reports the file)."""
    from labelpilot.imageio import read_size

    if item.width is not None and item.height is not None:
        return item.width, item.height
    try:
        item.width, item.height = read_size(item.read_bytes())
    except Exception:
        return None
    return item.width, item.height
