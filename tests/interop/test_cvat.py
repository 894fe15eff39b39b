"""The CVAT auto-annotation function (`labelpilot.interop.cvat`), through cvat-sdk's own
types: its spec is a `DetectionFunctionSpec` cvat-sdk accepts, and `detect` returns
cvat-sdk shapes equal to what the LabelPilot model itself finds."""

from __future__ import annotations

import importlib
from pathlib import Path

import attrs
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import pytest
from cvat_sdk import models
from PIL import Image

from labelpilot.errors import ModelNotFoundError
from labelpilot.models.catalogue import install
from labelpilot.models.registry import load_detector, load_ocr
from labelpilot.workspace import Workspace
from tests.conftest import page_dataset


@attrs.frozen(kw_only=True)
class Context(cvataa.DetectionFunctionContext):
    """What cvat-sdk's driver hands a function for each frame."""

    frame_name: str
    conf_threshold: float | None = None
    conv_mask_to_poly: bool = False


def test_a_detector_as_a_cvat_function(tmp_path: Path, shared: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    # as cvat-cli loads it: the module, then create(**parameters)
    module = importlib.import_module("labelpilot.interop.cvat")
    fn = module.create(model="yolox-nano", workspace=str(ws.root))
    assert isinstance(fn.spec, cvataa.DetectionFunctionSpec)
    assert [label.name for label in fn.spec.labels][:3] == ["person", "bicycle", "car"]
    assert {label.type for label in fn.spec.labels} == {"rectangle"}
    path = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[0]
    image = Image.open(path)
    bgr = np.asarray(image.convert("RGB"))[..., ::-1].copy()
    model = load_detector("yolox-nano", ws.models_dir)
    for threshold, want in ((None, model.predict(bgr)),
                            (0.05, model.predict(bgr, score_threshold=0.05))):
        shapes = fn.detect(Context(frame_name=path.name, conf_threshold=threshold), image)
        assert len(shapes) == len(want) > 0
        for s, a in zip(shapes, want, strict=True):
            assert isinstance(s, models.LabeledShapeRequest)
            assert s.frame == 0 and s.type.value == "rectangle"
            assert fn.spec.labels[s.label_id].name == a.label
            assert np.allclose(s.points, a.shape.bbox(), atol=1e-3)
    assert len(fn.detect(Context(frame_name="a", conf_threshold=0.05), image)) > \
        len(fn.detect(Context(frame_name="a"), image))  # a lower threshold, more objects
    with pytest.raises(ModelNotFoundError):
        module.create(model="nope", workspace=str(ws.root))


def test_an_ocr_model_as_a_cvat_function_with_the_text_as_an_attribute(tmp_path: Path) -> None:
    from labelpilot.interop.cvat import TEXT_ATTRIBUTE_ID, create

    ws = Workspace.create(tmp_path / "ws", task="ocr", labels=["text"])
    fn = create(model="ocr", workspace=str(ws.root))
    (label,) = fn.spec.labels
    assert label.name == "text" and label.type == "polygon"
    assert [(a.name, a.input_type.value) for a in label.attributes] == [("text", "text")]
    page = page_dataset(tmp_path / "p") / "page.png"
    image = Image.open(page)
    want = load_ocr("ocr", ws.models_dir).predict(np.asarray(image.convert("RGB"))[..., ::-1].copy())
    shapes = fn.detect(Context(frame_name="page.png"), image)
    assert len(shapes) == len(want) >= 5
    for s, a in zip(shapes, want, strict=True):
        assert s.type.value == "polygon" and len(s.points) == 8
        (attr,) = s.attributes
        assert attr.spec_id == TEXT_ATTRIBUTE_ID and attr.value == a.text
    assert "Region-based segmentation" in [s.attributes[0].value for s in shapes]
