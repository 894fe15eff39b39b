"""What an executor runs per image, the same code in this process and on a Ray worker: a
`Worker` loads the model named by a `Work` once (refusing one whose version or files
differ from the driver's), reads each image from the blob folder by its reference, and
returns the operation's result, or a `Failure` for an image that cannot be read.

The operations are the built-in ones (`OPS`, by name) or an `Operation` a higher layer
defines (active learning's scores and embeddings): a frozen dataclass at a module's top
level, so that Ray sends it by reference, saying what to load and what to do per image."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np

from labelpilot.annotations import Annotation
from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.executors.locations import BlobLocationError, open_location
from labelpilot.geometry.crops import rectify
from labelpilot.models.detect import DetectorModel, Tiling
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.ocr import OcrModel
from labelpilot.models.registry import get_manifest, load_detector, load_ocr, load_predictor

if TYPE_CHECKING:
    from labelpilot.workspace import Workspace

# prelabel: proposals (min_score; tile/overlap for detectors); prelabel-whole: an OCR
# model reads each image as one line; eval-detect: every detection scored at least
# score_threshold, each with whether the model shows it; eval-ocr: the OCR proposals and
# the transcriptions of the image's true quads (ImageRef.quads).
OPS = ("prelabel", "prelabel-whole", "eval-detect", "eval-ocr")

Quads = tuple[tuple[tuple[float, float], ...], ...]


@dataclass(frozen=True)
class ImageRef:
    """An image by content: its blob's SHA-256 and suffix (and, for the messages, its id
    and file name). `quads`: text quads the operation reads (eval-ocr: the true ones)."""

    id: int
    file_name: str
    sha256: str
    suffix: str
    quads: Quads = ()

    @classmethod
    def of(cls, row: Any, quads: Iterable[Iterable[Sequence[float]]] = ()) -> ImageRef:
        """The reference of an image row; `quads`: each a sequence of (x, y) points."""
        return cls(int(row.id), str(row.file_name), str(row.sha256), str(row.suffix),
                   tuple(tuple((float(p[0]), float(p[1])) for p in q) for q in quads))


@runtime_checkable
class Operation(Protocol):
    """Per-image work a caller defines: `load` the model (once per worker), `run` it on
    an image (BGR) and its reference. A LabelPilotError from `run` fails that image."""

    def load(self, name: str, models_dir: Path | None, threads: int) -> Any: ...

    def run(self, model: Any, image: np.ndarray, ref: ImageRef) -> Any: ...


@dataclass(frozen=True)
class Work:
    """One job's per-image work: the model (name, version and its files' checksums: what
    every worker must load), where blobs and models are, the operation and its options."""

    blobs: str
    models_dir: str | None
    model: str
    version: str
    checksums: tuple[tuple[str, str], ...]
    op: str | Operation
    min_score: float = 0.0
    score_threshold: float | None = None
    tile: int | None = None
    overlap: float = 0.2
    threads: int = 1
    blob_endpoint: str | None = None  # the S3 endpoint where `blobs` is s3://...
    # a model not registered (a variant `models optimize` is measuring): the workers load
    # these files (on a file system they share) after checking their SHA-256
    candidate: ModelManifest | None = None

    @property
    def tiling(self) -> Tiling | None:
        return Tiling(self.tile, self.overlap) if self.tile else None


@dataclass(frozen=True)
class Failure:
    """An image the worker could not read (it is reported, the job goes on)."""

    message: str


def plan_work(ws: Workspace, model: str, op: str | Operation, **options: Any) -> Work:
    if isinstance(op, str) and op not in OPS:
        raise LabelPilotError(f"unknown operation {op!r}; known: {', '.join(OPS)}")
    manifest = get_manifest(model, ws.models_dir)
    return Work(str(ws.blobs.root), str(ws.models_dir) if ws.models_dir else None, model,
                manifest.version, _checksums(manifest), op, **options)


def plan_candidate(ws: Workspace, manifest: ModelManifest, op: str | Operation,
                   **options: Any) -> Work:
    """The work of an unregistered model (see `Work.candidate`): a detector or OCR model."""
    if manifest.kind not in ("detect", "ocr"):
        raise LabelPilotError(f"a {manifest.kind} model cannot be measured on an executor")
    return Work(str(ws.blobs.root), str(ws.models_dir) if ws.models_dir else None,
                manifest.name, manifest.version, _checksums(manifest), op, candidate=manifest,
                **options)


def _checksums(manifest: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((role, f.sha256) for role, f in manifest.files.items()))


def transcriptions(ocr: OcrModel, image: np.ndarray, quads: Iterable[Any]) -> list[str]:
    """What the recognizer reads in each quad's upright crop (a person's quad starts where
    the text starts: no orientation guess)."""
    return [text for text, _ in ocr.recognize([rectify(image, np.asarray(q)) for q in quads])]


def shown_detections(det: DetectorModel, image: np.ndarray, *, score_threshold: float | None,
                     tiling: Tiling | None) -> list[tuple[Annotation, bool]]:
    """A detector's detections scored at least `score_threshold`, each with whether the
    model shows it (its display threshold for the class, by its own class name)."""
    found = det.predict(image, score_threshold=score_threshold, tiling=tiling)
    return [(a, float(a.score or 0.0) >= det.threshold_for(a.label)) for a in found]


class Worker:
    """Runs a `Work` on images; the model is loaded at the first image (in the process's
    model cache, with the fastest kept variant for this machine's device)."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.blobs = open_location(work.blobs, work.blob_endpoint)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        w = self.work
        if w.candidate is not None:  # these files, as they are, or none
            w.candidate.verify()
            if w.candidate.kind == "ocr":
                return OcrModel(w.candidate, threads=w.threads)
            return DetectorModel(w.candidate, threads=w.threads)
        models_dir = Path(w.models_dir) if w.models_dir else None
        manifest = get_manifest(w.model, models_dir)
        if manifest.version != w.version or _checksums(manifest) != w.checksums:
            raise ModelError(
                f"this worker has model {w.model} version {manifest.version} with other "
                f"files than the job's (version {w.version})",
                hint=f"every worker must see the same models folder ({w.models_dir}): sync "
                     "it, or run the job again after the model is copied everywhere")
        if isinstance(w.op, Operation):
            return w.op.load(w.model, models_dir, w.threads)
        if w.op == "eval-detect":
            return load_detector(w.model, models_dir, threads=w.threads)
        if w.op in ("eval-ocr", "prelabel-whole"):
            return load_ocr(w.model, models_dir, threads=w.threads)
        return load_predictor(w.model, models_dir, threads=w.threads)

    def run(self, ref: ImageRef) -> Any:
        model = self.model  # a model that cannot load fails the job, not the image
        try:
            image = self.blobs.load_image(ref)
        except BlobLocationError:
            raise  # the job's, not the image's
        except LabelPilotError as e:
            return Failure(e.message)
        w = self.work
        if isinstance(w.op, Operation):
            try:
                return w.op.run(model, image, ref)
            except LabelPilotError as e:
                return Failure(e.message)
        if w.op == "prelabel-whole":
            return cast(OcrModel, model).predict_whole(image, min_score=w.min_score)
        if w.op == "prelabel":
            if w.tiling is not None:
                return cast(DetectorModel, model).predict(image, min_score=w.min_score,
                                                          tiling=w.tiling)
            return model.predict(image, min_score=w.min_score)
        if w.op == "eval-detect":
            det = cast(DetectorModel, model)
            return shown_detections(det, image, score_threshold=w.score_threshold,
                                    tiling=w.tiling or det.default_tiling)
        ocr = cast(OcrModel, model)
        return ocr.predict(image), transcriptions(ocr, image, ref.quads)
