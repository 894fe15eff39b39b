"""A CVAT auto-annotation function that runs any LabelPilot detector or OCR model:

    cvat-cli task auto-annotate TASK_ID --function-module labelpilot.interop.cvat \\
        -p workspace=str:/path/to/workspace -p model=str:yolox-nano [--conf-threshold 0.4]

`create(model, workspace)` gives the function (cvat-sdk's `DetectionFunction`): its spec
declares the model's classes as CVAT labels (a detector's as rectangles; an OCR model's
`text` as polygons with a `text` attribute holding the transcription), and `detect` runs
the model (its fastest kept variant) on the frame. CVAT matches the labels to the task's
by name. With `--conf-threshold` every object scored at least that is returned; without,
what the model shows (its own thresholds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Quad, RotatedBox
from labelpilot.extras import require_cvat_sdk
from labelpilot.models.registry import get_manifest, open_predictor

TEXT_ATTRIBUTE_ID = 1


class LabelPilotFunction:
    """A LabelPilot model as a CVAT detection function."""

    def __init__(self, model: str, workspace: str | Path = ".",
                 threads: int | None = None) -> None:
        cvataa, self._models = require_cvat_sdk()
        self._aa = cvataa
        models_dir = Path(workspace) / "models"
        self.kind = get_manifest(model, models_dir).kind
        self.model, _, self.variant = open_predictor(model, models_dir, threads=threads)
        self.labels = list(self.model.spec.labels)
        if self.kind == "ocr":
            specs = [cvataa.label_spec(name, k, type="polygon", attributes=[
                cvataa.text_attribute_spec("text", TEXT_ATTRIBUTE_ID)])
                for k, name in enumerate(self.labels)]
        else:
            specs = [cvataa.label_spec(name, k, type="rectangle")
                     for k, name in enumerate(self.labels) if name]
        self.spec = cvataa.DetectionFunctionSpec(labels=specs)

    def proposals(self, image: Any, conf_threshold: float | None) -> list[Annotation]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
        if self.kind == "detect" and conf_threshold is not None:
            return self.model.predict(bgr, score_threshold=conf_threshold)  # type: ignore[call-arg]
        return self.model.predict(bgr, min_score=conf_threshold or 0.0)

    def detect(self, context: Any, image: Any) -> list[Any]:
        out = []
        for a in self.proposals(image, context.conf_threshold):
            label = self.labels.index(a.label)
            shape, kw = a.shape, {}
            if a.text is not None:
                kw["attributes"] = [self._models.AttributeValRequest(
                    spec_id=TEXT_ATTRIBUTE_ID, value=a.text)]
            if isinstance(shape, Box):
                out.append(self._aa.rectangle(label, [shape.x1, shape.y1, shape.x2, shape.y2],
                                              **kw))
            elif isinstance(shape, RotatedBox):
                x1, y1, x2, y2 = shape.cx - shape.w / 2, shape.cy - shape.h / 2, \
                    shape.cx + shape.w / 2, shape.cy + shape.h / 2
                out.append(self._aa.rectangle(label, [x1, y1, x2, y2], rotation=shape.angle,
                                              **kw))
            elif isinstance(shape, Quad | Polygon):
                out.append(self._aa.polygon(label, [v for p in shape.points for v in p], **kw))
            elif isinstance(shape, Point):
                out.append(self._aa.shape(label, type="points", points=[shape.x, shape.y],
                                          **kw))
            elif isinstance(shape, Mask):
                continue  # the served kinds give no masks
        return out


def create(model: str, workspace: str = ".", threads: int = 0) -> LabelPilotFunction:
    """The function for `cvat-cli ... --function-module labelpilot.interop.cvat
    -p model=str:NAME -p workspace=str:DIR`."""
    return LabelPilotFunction(model, workspace, threads or None)
