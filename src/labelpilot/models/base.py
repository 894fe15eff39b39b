"""The one model seam: what every plug-in is (`ModelSpec`), and the two protocols the
rest of LabelPilot calls: a `Predictor` (image -> proposals: OCR, detection) and an
`InteractiveSegmenter` (image -> embedding, prompt -> masks), with their prompts.

Plug-ins import this module; nothing here imports a plug-in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from labelpilot.annotations import Annotation
from labelpilot.errors import PromptError


@dataclass(frozen=True)
class ModelSpec:
    """What a plug-in is: its name and version, its task, its own label names."""

    name: str
    version: str
    task: str
    labels: tuple[str, ...]
    description: str = ""

    @property
    def source(self) -> str:
        """The `source` its proposals carry: model:<name>@<version>."""
        return f"model:{self.name}@{self.version}"


class Predictor(Protocol):
    """A model that proposes labels for a whole image (OCR lines, detector boxes)."""

    spec: ModelSpec

    def predict(self, image: np.ndarray, *, min_score: float = 0.0) -> list[Annotation]:
        """`image`: BGR uint8 HxWx3. Proposals labelled with the model's own class names,
        each with a score and `source` = spec.source, status `predicted`."""
        ...

    def predict_batch(self, images: Sequence[np.ndarray], *, min_score: float = 0.0
                      ) -> list[list[Annotation]]:
        """`predict` for several images at once (what a model server batches), in order."""
        ...


class StagedPredictor(Predictor, Protocol):
    """A predictor whose `predict_batch` is three stages: `prepare` (per image, any
    thread), `run_prepared` (the network, once for a batch) and `finish` (per image, any
    thread): a server runs only the middle one in its batching thread."""

    def prepare(self, image: np.ndarray) -> Any: ...

    def run_prepared(self, items: Sequence[Any]) -> list[Any]: ...

    def finish(self, prepared: Any, outputs: Any, min_score: float = 0.0
               ) -> list[Annotation]: ...


@dataclass(frozen=True)
class Click:
    x: float
    y: float
    positive: bool = True


@dataclass
class Prompt:
    """Clicks (image pixels), an optional box (x1, y1, x2, y2) and the previous mask."""

    clicks: list[Click] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    previous: np.ndarray | None = None  # bool, image size

    def validate(self, width: int, height: int) -> None:
        if not self.clicks and self.box is None:
            raise PromptError("empty prompt", hint="give at least one click or a box")
        for i, c in enumerate(self.clicks):
            if not (0 <= c.x < width and 0 <= c.y < height):
                raise PromptError(f"clicks[{i}] at ({c.x:g}, {c.y:g}) is outside the image "
                                  f"({width}x{height})", hint="click inside the image")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not all(np.isfinite(v) for v in self.box):
                raise PromptError("box has a non-finite coordinate")
            if x2 <= x1 or y2 <= y1:
                raise PromptError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero area",
                                  hint="drag a box with x2 > x1 and y2 > y1")
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                raise PromptError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the image "
                                  f"({width}x{height})")
        if self.previous is not None and self.previous.shape != (height, width):
            raise PromptError(f"previous mask is {self.previous.shape[1]}x{self.previous.shape[0]}, "
                              f"the image {width}x{height}")

    def scaled(self, sx: float, sy: float) -> Prompt:
        box = None
        if self.box is not None:
            box = (self.box[0] * sx, self.box[1] * sy, self.box[2] * sx, self.box[3] * sy)
        return Prompt([Click(c.x * sx, c.y * sy, c.positive) for c in self.clicks], box, None)


@dataclass
class MaskProposal:
    mask: np.ndarray  # bool, image size
    # the model's own estimate of IoU, 0..1; None when it has none (the graph cut)
    quality: float | None


class Embedding(Protocol):
    """What a segmenter computes once per image; `nbytes` bounds the cache."""

    @property
    def nbytes(self) -> int: ...


class InteractiveSegmenter(Protocol):
    """Click/box -> mask: an embedding per image computed once, then cheap prompts."""

    name: str
    version: str

    def embed(self, image: np.ndarray) -> Any:
        """`image`: RGB uint8 HxWx3. The result is cached and handed back to predict()."""

    def predict(self, embedding: Any, prompt: Prompt) -> list[MaskProposal]:
        """Best first; 1-3 proposals, each a bool mask of the embedded image's size."""

    def save_embedding(self, embedding: Any) -> dict[str, np.ndarray]:
        """Arrays that restore the embedding (written to the disk cache)."""

    def load_embedding(self, arrays: dict[str, np.ndarray]) -> Any:
        """The inverse of save_embedding."""
