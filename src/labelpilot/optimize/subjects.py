"""What `models optimize` does for each kind of model: which of its files (roles) it tries
to make cheaper and how, what each is judged on, and what is timed.

- A detector has one file (`model`), judged on mAP50 by the COCO protocol over whole
  images, timed on the whole pre-labeling path (preprocessing, network, decoding).
- An OCR model has a detector (`det`), judged on the detection hmean of its quads (IoU
  0.5, before recognition), timed on detection; and a recognizer (`rec`), judged on line
  accuracy on the true quads, timed on recognizing the lines of an image. The recognizer
  is also tried with its output layer pruned to the characters the project uses
  (`optimize.prune`), alone and then in INT8. The line classifier is left alone (a few
  percent of the time).

Each try makes files from the model's own (FP32) files into a work folder; the gate
(`optimize.gate`) scores, times and keeps or refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError
from labelpilot.executors import (
    ExecutorSpec,
    Failure,
    ImageRef,
    open_executor,
    plan_candidate,
    transcriptions,
)
from labelpilot.models.manifest import ModelManifest
from labelpilot.store import repo
from labelpilot.workspace import Workspace

MAX_CALIBRATION_LINES = 256  # text-line crops calibrating a recognizer
SMALLER_HEIGHT = 32  # the input height a recognizer is also tried at (PP-OCR's v2 height)


@dataclass
class Made:
    """What a try wrote: files by role, and what to say about them."""
    files: dict[str, Path]
    info: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # settings it runs with


@dataclass
class Try:
    label: str  # "INT8, the body through"
    make: Callable[[Path], Made]  # work folder -> files
    # a slower, more careful version of the try before it: skipped when that one kept the
    # accuracy but was too slow (it could only be slower)
    slower: bool = False


@dataclass
class Role:
    name: str  # the manifest's file role it replaces
    metrics: tuple[str, ...]  # what a variant of it is judged on (higher is better)
    run: Callable[[Any, Any], Any]  # (model, timed item) -> the stage it costs
    tries: list[Try]


class Subject:
    """A model being optimized: load, score (here, or on `executor`: the workers load the
    candidate's files from the models folder they share), time (always here)."""

    roles: list[Role]
    fp32: Any
    stage_is_whole = False  # one role whose stage is the whole pre-labeling path
    executor: ExecutorSpec | None = None

    def load(self, manifest: ModelManifest) -> Any:
        raise NotImplementedError

    def score(self, model: Any, metrics: tuple[str, ...]) -> dict[str, float]:
        raise NotImplementedError

    def timed_items(self, role: Role | None) -> list[Any]:
        """What a role's stage is timed on (None: the whole pre-labeling path)."""
        raise NotImplementedError

    def run_whole(self, model: Any, item: Any) -> Any:
        raise NotImplementedError

    @property
    def all_metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for r in self.roles for m in r.metrics))


def _int8_tries(src: Path, role: str, feeds: Callable[[], list[dict[str, np.ndarray]]],
                method: str) -> list[Try]:
    """INT8 of `src` quantized through, then (when that loses too much) with its
    convolutions alone and its prediction layers in float."""
    from labelpilot.optimize.quantize import quantize_int8

    def make(careful: bool) -> Callable[[Path], Made]:
        def go(work: Path) -> Made:
            dst = work / f"{role}.{'careful.' if careful else ''}int8.onnx"
            floats, used = quantize_int8(src, dst, feeds(), method=method, careful=careful)
            return Made({role: dst}, {"precision": "int8", "layers_in_float": len(floats),
                                      "method": used})
        return go

    return [Try("INT8, the body through", make(False)),
            Try("INT8, convolutions only, prediction layers in float", make(True), slower=True)]


@dataclass(frozen=True)
class OcrParts:
    """An OCR model's parts on one image (an executor `Operation`): the points of the
    lines its detector finds (`det`) and its recognizer's reading of the image's true
    quads (`rec`, the quads in the image's reference)."""

    det: bool
    rec: bool

    def load(self, name: str, models_dir: Path | None, threads: int) -> Any:
        from labelpilot.models.registry import load_ocr

        return load_ocr(name, models_dir, threads=threads)

    def read(self, model: Any, image: np.ndarray, quads: Iterable[Any]
             ) -> tuple[list[Any], list[str]]:
        lines = [ln.points.tolist() for ln in model.detect(image)] if self.det else []
        return lines, transcriptions(model, image, quads) if self.rec else []

    def run(self, model: Any, image: np.ndarray, ref: ImageRef) -> tuple[list[Any], list[str]]:
        return self.read(model, image, ref.quads)


class DetectorSubject(Subject):
    stage_is_whole = True

    def __init__(self, ws: Workspace, manifest: ModelManifest, method: str, split: str,
                 scored: list[Any], calib: list[Any], timed: int) -> None:
        self.ws, self.split, self.scored = ws, split, scored
        self.fp32 = self.load(manifest)
        self.images = [ws.blobs.load_image(r) for r in scored[:timed]]
        self.calib = calib
        src, _ = manifest.file("model")
        self.roles = [Role("model", ("map50",), lambda m, img: m.detect(img),
                           _int8_tries(src, "model", self.calibration_feeds, method))]

    def calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        """The network's inputs for the calibration images, preprocessed as it runs."""
        names = self.fp32.session.input_names
        out = []
        for r in self.calib:
            x, sx, sy = self.fp32.preprocess(self.ws.blobs.load_image(r))
            feed = {names[0]: x}
            if len(names) > 1:  # PP-PicoDet's scale_factor
                feed[names[1]] = np.array([[sy, sx]], np.float32)
            out.append(feed)
        return out

    def load(self, manifest: ModelManifest) -> Any:
        from labelpilot.models.detect import DetectorModel

        return DetectorModel(manifest, threads=1)

    def score(self, model: Any, metrics: tuple[str, ...]) -> dict[str, float]:
        from labelpilot.evaluation.run import evaluate_detector

        return {"map50": float(evaluate_detector(self.ws, model, self.split,
                                                 executor=self.executor)["map50"])}

    def timed_items(self, role: Role | None) -> list[Any]:
        return self.images

    def run_whole(self, model: Any, item: Any) -> Any:
        return model.detect(item)


class OcrSubject(Subject):
    def __init__(self, ws: Workspace, manifest: ModelManifest, method: str, split: str,
                 scored: list[Any], calib: list[Any], calibrate_on: str, timed: int,
                 prune: bool) -> None:
        from labelpilot.evaluation.run import text_truth, truth_crops

        self.ws = ws
        self.fp32 = self.load(manifest)
        with ws.engine.connect() as conn:
            _, scored_anns = repo.confirmed_labels(conn, split)
            _, calib_anns = repo.confirmed_labels(conn, calibrate_on)
        # the scored images and their true lines (read from the store at each pass)
        self.rows = [(r, gt) for r in scored if (gt := text_truth(scored_anns.get(r.id, [])))]
        if not self.rows:
            raise LabelPilotError(f"the {split} split has no accepted text lines to score "
                                  f"{manifest.name} on", hint="accept or import OCR ground "
                                  "truth into it first")
        # the timed ones, held: the image, its true lines, the crops of their quads
        self.timed = [self._item(r, gt) for r, gt in self.rows[:timed]]
        calib_lines = [(r, g) for r in calib for g in text_truth(calib_anns.get(r.id, []))
                       if not g.ignore]
        self.used = sorted({ch for _, g in calib_lines for ch in g.text})

        def det_feeds() -> list[dict[str, np.ndarray]]:
            name = self.fp32.det.input_names[0]
            return [{name: self.fp32.det_input(ws.blobs.load_image(r))} for r in calib]

        made: dict[int | None, list[dict[str, np.ndarray]]] = {}

        def rec_feeds(height: int | None = None) -> list[dict[str, np.ndarray]]:
            """The calibration lines as the recognizer's inputs (at `height`), made once
            per height: several tries quantize the recognizer."""
            if height not in made:
                name = self.fp32.rec.input_names[0]
                step = max(1, len(calib_lines) // MAX_CALIBRATION_LINES)
                chosen = calib_lines[::step][:MAX_CALIBRATION_LINES]
                images: dict[int, np.ndarray] = {}
                made[height] = []
                for r, g in chosen:
                    if r.id not in images:
                        images = {r.id: ws.blobs.load_image(r)}  # one image held at a time
                    (crop,) = truth_crops(images[r.id], [g])
                    made[height].append({name: self.fp32.rec_input(crop, height)})
            return made[height]

        det, _ = manifest.file("det")
        rec, _ = manifest.file("rec")
        self.roles = [
            Role("det", ("det_hmean",), lambda m, item: m.detect(item[0]),
                 _int8_tries(det, "det", det_feeds, method)),
            Role("rec", ("rec_line_accuracy",), lambda m, item: m.recognize(item[2]),
                 _int8_tries(rec, "rec", rec_feeds, method)
                 + self._cheaper_recognizers(rec, rec_feeds, method, prune))]

    def _cheaper_recognizers(self, rec: Path, feeds: Callable[[int | None], Any], method: str,
                             prune: bool) -> list[Try]:
        """The recognizer with a smaller input height (where its graph pools the height
        away, so that it runs at another), pruned to the characters in use, both, and each
        of those in INT8 (prediction layers in float)."""
        from labelpilot.optimize.prune import free_height, prune_recognizer
        from labelpilot.optimize.quantize import quantize_int8

        height = self.fp32.settings.rec_height
        smaller = SMALLER_HEIGHT if height > SMALLER_HEIGHT else None

        def make(lower: bool, pruned: bool, int8: bool) -> Callable[[Path], Made]:
            def go(work: Path) -> Made:
                tag = "".join(["h" if lower else "", "p" if pruned else "", "q" if int8 else ""])
                files: dict[str, Path] = {}
                info: dict[str, Any] = {"precision": "fp32"}
                src = rec
                if pruned:
                    dst = work / f"rec.{tag}.pruned.onnx"
                    p = prune_recognizer(src, dst, self.fp32.charset, self.used)
                    table = work / f"dict.{tag}.txt"
                    table.write_text("".join(f"{c}\n" for c in p.characters), encoding="utf-8")
                    files["dict"], src = table, dst
                    info.update(classes=[p.classes_before, p.classes_after],
                                pruned_to="".join(p.characters) + (" " if p.space else ""))
                if lower:
                    dst = work / f"rec.{tag}.free-height.onnx"
                    free_height(src, dst)
                    src = dst
                if int8:
                    dst = work / f"rec.{tag}.int8.onnx"
                    floats, used = quantize_int8(src, dst, feeds(smaller if lower else None),
                                                 method=method, careful=True)
                    info.update(precision="int8", layers_in_float=len(floats), method=used)
                    src = dst
                files["rec"] = src
                return Made(files, info, {"rec_height": smaller} if lower else {})
            return go

        out = []
        for lower in ([False, True] if smaller else [False]):
            for pruned in ([False, True] if prune else [False]):
                if not (lower or pruned):
                    continue  # INT8 alone: tried before
                what = ", ".join([*([f"input height {smaller}"] if lower else []),
                                  *(["output layer pruned to the characters in use"]
                                    if pruned else [])])
                out += [Try(what, make(lower, pruned, False)),
                        Try(f"{what}, then INT8 (prediction layers in float)",
                            make(lower, pruned, True))]
        return out

    def load(self, manifest: ModelManifest) -> Any:
        from labelpilot.models.ocr import OcrModel

        return OcrModel(manifest, threads=1)

    def _item(self, row: Any, gt: list[Any]) -> tuple[np.ndarray, list[Any], list[np.ndarray]]:
        from labelpilot.evaluation.run import truth_crops

        image = self.ws.blobs.load_image(row)
        return image, gt, truth_crops(image, gt)

    def score(self, model: Any, metrics: tuple[str, ...]) -> dict[str, float]:
        from labelpilot.evaluation.ocr import PredLine, evaluate

        det, rec = "det_hmean" in metrics, "rec_line_accuracy" in metrics
        gts: list[Any] = [gt for _, gt in self.rows]
        preds, recs = [], []
        for lines, texts in self._read(model, OcrParts(det, rec)):
            if det:
                preds.append([PredLine(points, "") for points in lines])
            if rec:
                recs.append(texts)
        out: dict[str, float] = {}
        if "det_hmean" in metrics:
            out["det_hmean"] = float(evaluate(gts, preds, [[g.text for g in gt] for gt in gts])
                                     ["det_hmean"])
        if "rec_line_accuracy" in metrics:
            out["rec_line_accuracy"] = float(evaluate(gts, [[] for _ in gts], recs)
                                             ["rec_line_accuracy"])
        return out

    def _read(self, model: Any, op: OcrParts) -> Iterator[tuple[list[Any], list[str]]]:
        """`op` on each scored image: here, or on the executor."""
        if self.executor is None:
            for row, gt in self.rows:
                image = self.ws.blobs.load_image(row)
                yield op.read(model, image, [g.points for g in gt])
            return
        refs = [ImageRef.of(row, [g.points for g in gt]) for row, gt in self.rows]
        work = plan_candidate(self.ws, model.manifest, op)
        with closing(open_executor(self.executor).map(work, refs)) as results:
            for _, got in results:
                if isinstance(got, Failure):
                    raise LabelPilotError(got.message, hint="scoring needs every image")
                yield got

    def timed_items(self, role: Role | None) -> list[Any]:
        return self.timed

    def run_whole(self, model: Any, item: Any) -> Any:
        return model.predict(item[0])
