"""Import/export formats: the registry here (name -> format), shared helpers in `base`, one
module per format with `load(source) -> Dataset` and `save(dataset, dest)`, and
segmentation maps shared by the mask readers in `segmaps`. Format modules import `base`,
`segmaps` and the annotation vocabulary only, never this registry or each other."""

from __future__ import annotations

from typing import Any

from labelpilot.errors import LabelPilotError
from labelpilot.formats.base import Format
from labelpilot.formats.coco import Coco
from labelpilot.formats.cvat import Cvat
from labelpilot.formats.icdar import Icdar2015
from labelpilot.formats.images import Images
from labelpilot.formats.labelme import LabelMe
from labelpilot.formats.labelstudio import LabelStudio
from labelpilot.formats.masks import Masks
from labelpilot.formats.ppocr import PPOCRLabel, PPOCRRec
from labelpilot.formats.voc import Voc
from labelpilot.formats.yolo import Yolo, YoloObb, YoloSeg

FORMATS: dict[str, Format] = {f.name: f for f in (
    Coco(), Cvat(), Icdar2015(), Images(), LabelMe(), LabelStudio(), Masks(), PPOCRLabel(),
    PPOCRRec(), Voc(), Yolo(), YoloObb(), YoloSeg())}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise LabelPilotError(f"unknown format {name!r}",
                              hint=f"choose one of: {', '.join(sorted(FORMATS))}") from None


def configured(fmt: Format, options: dict[str, Any] | None) -> Format:
    """The format with `options` applied (formats that take options define with_options)."""
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    if not opts:
        return fmt
    with_options = getattr(fmt, "with_options", None)
    if with_options is None:
        raise LabelPilotError(f"the {fmt.name} format takes no options (got "
                              f"{', '.join(opts)})")
    return with_options(**opts)  # type: ignore[no-any-return]


def list_formats() -> list[str]:
    return sorted(FORMATS)
