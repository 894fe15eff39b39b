"""Click to box: one click on an object -> its box. The detector's best box holding the
clicks (positive ones inside, negative ones outside), else the bounding box of the
segmentation mask for the clicks. A second click corrects the first answer.

On a large image (over WINDOW_FROM px on its long side) the detector first looks at a
window of WINDOW px round the first positive click, at its own input scale, where a small
object stays large enough to be found; then at the whole image (for large objects)."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from labelpilot.assist.sessions import SessionPool, image_key
from labelpilot.errors import LabelPilotError, PromptError
from labelpilot.models.base import Click, Prompt
from labelpilot.models.detect import Detections, DetectorModel
from labelpilot.models.registry import load_detector, workspace_manifests


@dataclass
class BoxAnswer:
    box: tuple[float, float, float, float]
    label: str | None  # the detector's class; None from a mask
    score: float | None  # the detector's score, or the segmenter's quality (None: none)
    source: str
    method: Literal["detector", "mask"]


# images larger than this (long side) are searched in a window round the click first
WINDOW_FROM = 1280
WINDOW = 640


def click_window(width: int, height: int, x: float, y: float, size: int = WINDOW
                 ) -> tuple[int, int, int, int]:
    """A `size` square round (x, y), moved inside the image (the image itself if smaller)."""
    w, h = min(size, width), min(size, height)
    x1 = int(min(max(0, x - w / 2), width - w))
    y1 = int(min(max(0, y - h / 2), height - h))
    return x1, y1, x1 + w, y1 + h


class DetectionCache:
    """A detector's boxes per image, kept for the last `size` images (clicks come in runs)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._hits: OrderedDict[tuple[str, str], Detections] = OrderedDict()
        self._lock = threading.Lock()
        self._warming: ThreadPoolExecutor | None = None

    def has(self, model: DetectorModel, image_key: str) -> bool:
        """Whether the model's boxes on the whole image are here already."""
        with self._lock:
            return (model.spec.source, image_key) in self._hits

    def warm(self, model: DetectorModel, image_key: str, load: Any) -> None:
        """Find the model's boxes on the image in the background (the editor is opening
        it), so that its first click to box does not wait for the detector."""
        if self.has(model, image_key):
            return
        with self._lock:
            if self._warming is None:
                self._warming = ThreadPoolExecutor(1, thread_name_prefix="labelpilot-boxes")
            pool = self._warming

        def run() -> None:
            with contextlib.suppress(LabelPilotError):
                self.detections(model, image_key, load)

        pool.submit(run)

    def close(self) -> None:
        if self._warming is not None:
            self._warming.shutdown(wait=False, cancel_futures=True)

    def detections(self, model: DetectorModel, image_key: str, load: Any,
                   window: tuple[int, int, int, int] | None = None) -> Detections:
        """The model's boxes on the image (`load` reads it), or on a `window` of it (boxes
        in image coordinates)."""
        key = (model.spec.source, image_key if window is None else f"{image_key}@{window}")
        with self._lock:
            hit = self._hits.get(key)
            if hit is not None:
                self._hits.move_to_end(key)
                return hit
        image = load()
        if window is None:
            found = model.detect(image)
        else:
            d, cut = model.detect_window(image, window)
            # an object the window cut is left to the whole image
            found = Detections(d.boxes[~cut], d.scores[~cut], d.classes[~cut])
        with self._lock:
            self._hits[key] = found
            while len(self._hits) > self.size:
                self._hits.popitem(last=False)
        return found


def default_detector(ws: Any) -> str | None:
    """The detector click to box asks unless told: the project's pre-labeler, else its
    first installed detector, else none."""
    found = {m.name: m for m in workspace_manifests(ws.models_dir).values() if m.kind == "detect"}
    return ws.prelabeler if ws.prelabeler in found else next(iter(found), None)


def warm_boxes(sessions: SessionPool, cache: DetectionCache, row: Any) -> None:
    """Start finding the default detector's boxes on an image being opened (see
    `DetectionCache.warm`); nothing when the workspace has no detector."""
    name = default_detector(sessions.ws)
    if name is None or max(row.width, row.height) > WINDOW_FROM:
        return  # large images are searched round the click first: nothing to warm
    with contextlib.suppress(LabelPilotError):
        model = load_detector(name, sessions.ws.models_dir)
        cache.warm(model, image_key(row), lambda: sessions.ws.blobs.load_image(row))


def pick_box(det: Detections, labels: Sequence[str], clicks: list[Click]
             ) -> tuple[tuple[float, float, float, float], str, float] | None:
    """The highest-scored detection that holds every positive click and no negative one."""
    best = None
    for box, score, cls in zip(det.boxes, det.scores, det.classes, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)

        def inside(c: Click, x1: float = x1, y1: float = y1, x2: float = x2,
                   y2: float = y2) -> bool:
            return x1 <= c.x <= x2 and y1 <= c.y <= y2

        if all(inside(c) == c.positive for c in clicks) and (best is None or score > best[2]):
            best = ((x1, y1, x2, y2), labels[int(cls)], float(score))
    return best


def click_box(sessions: SessionPool, cache: DetectionCache, row: Any, clicks: list[Click], *,
              detector: str | None = None, segmenter: str | None = None) -> BoxAnswer:
    """The box for `clicks` on the stored image `row`. Without a named `detector` the
    workspace's first detector is asked, if it has one."""
    ws = sessions.ws
    prompt = Prompt(clicks)
    prompt.validate(row.width, row.height)
    if not any(c.positive for c in clicks):
        raise PromptError("click-box needs a positive click on the object")
    if detector is None:
        detector = default_detector(ws)
    if detector is not None:
        model = load_detector(detector, ws.models_dir)
        windows: list[tuple[int, int, int, int] | None] = [None]
        if max(row.width, row.height) > WINDOW_FROM:
            first = next(c for c in clicks if c.positive)
            windows.insert(0, click_window(row.width, row.height, first.x, first.y))
        for window in windows:
            hit = pick_box(cache.detections(model, image_key(row),
                                            lambda: ws.blobs.load_image(row), window),
                           model.spec.labels, clicks)
            if hit is not None:
                box, label, score = hit
                return BoxAnswer(box, label, score, model.spec.source, "detector")
    res, manifest = sessions.segment(row, prompt, segmenter)
    mask = res.proposals[0].mask if res.proposals else None
    if mask is None or not mask.any():
        raise PromptError("no object found under the click",
                          hint="click nearer the object's middle, or draw the box")
    ys, xs = np.nonzero(mask)
    return BoxAnswer((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                     None, res.proposals[0].quality, manifest.source, "mask")
