"""Choosing what to label next: score the images nobody has reviewed with the current
model (uncertainty), embed them with its backbone or image encoder (diversity; a segmenter
with no learnt features, with the shipped OCR detector's backbone), or both (hybrid: the most
uncertain three times the budget, spread out by k-center greedy), or draw at random;
then make the chosen images the labeling queue's first, each with the reason.

Scores are stored per model version and embeddings per image content, so a second
selection with the same model computes only what is new."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.active.diversity import k_center_greedy
from labelpilot.active.uncertainty import (
    Informativeness,
    score_detections,
    score_lines,
    score_masks,
)
from labelpilot.annotations import Quad
from labelpilot.errors import LabelPilotError, ValidationError
from labelpilot.executors import (
    Batches,
    ExecutorSpec,
    Failure,
    ImageRef,
    Operation,
    open_executor,
    plan_work,
)
from labelpilot.models.features import EncoderFeatures, FeatureExtractor
from labelpilot.models.ocr import OcrModel
from labelpilot.models.registry import (
    SEGMENTER_KINDS,
    default_segmenter,
    get_manifest,
    load_detector,
    load_ocr,
    load_segmenter,
)
from labelpilot.models.sam import SamSegmenter
from labelpilot.store import repo, scores
from labelpilot.workspace import Workspace

STRATEGIES = ("uncertainty", "diversity", "hybrid", "random")
# hybrid: the most uncertain this many times the budget, then spread out
HYBRID_FACTOR = 3
# the model kind each workspace task selects with (segment: any interactive segmenter)
TASK_KINDS = {"ocr": "ocr", "detect": "detect", "segment": "segmenter"}
_BATCH = 16  # images scored per transaction, at most
_BATCH_S = 0.25  # seconds between transactions, at most
_REFS = 500  # images whose annotations are read at once

Progress = Callable[[int, int], None]
# each loaded model's backbone extractor (the models are the registry's cached instances)
Extractor = FeatureExtractor | EncoderFeatures
_EXTRACTORS: weakref.WeakKeyDictionary[Any, Extractor] = weakref.WeakKeyDictionary()
_EXTRACTORS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SelectParams:
    strategy: str
    budget: int
    model: str | None = None
    split: str | None = None
    seed: int = 0
    executor: dict[str, Any] | None = None  # ExecutorSpec.params(): None runs here

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)


def repeat_selection(ws: Workspace, last: dict[str, Any] | None, model: str
                     ) -> SelectParams | None:
    """`last` (a finished selection's parameters) to run again with `model`, its budget
    cut to the images left; None for a random draw, or when nothing is left."""
    if not last or last.get("strategy") == "random":
        return None
    n = pool_size(ws, last.get("split"))
    if n == 0:
        return None
    return SelectParams(last["strategy"], min(int(last["budget"]), n), model, last.get("split"),
                        int(last.get("seed", 0)), last.get("executor"))


def rescoring(ws: Workspace, last: dict[str, Any] | None, model: str) -> SelectParams | None:
    """The selection to run again now that `model` has a new version: the last one if it
    scored with `model` (see `repeat_selection`); None when it used another model."""
    if not last or last.get("model") != model:
        return None
    return repeat_selection(ws, last, model)


def pool_size(ws: Workspace, split: str | None = None) -> int:
    """How many images a selection chooses from (see `store.scores.pool`)."""
    with ws.engine.connect() as conn:
        return len(scores.pool(conn, split))


def plan_select(ws: Workspace, *, strategy: str, budget: int, model: str | None = None,
                split: str | None = None, seed: int = 0,
                executor: ExecutorSpec | None = None) -> SelectParams:
    """The selection's parameters, checked before anything runs or changes: a known
    strategy, a model of the workspace's task (any model for `random`, which needs none),
    images left to choose from and a budget they can fill."""
    if strategy not in STRATEGIES:
        raise ValidationError(f"strategy must be one of {', '.join(STRATEGIES)}, not "
                              f"{strategy!r}")
    if budget < 1:
        raise ValidationError(f"the budget must be 1 image or more, not {budget}")
    if split not in (None, "train", "val", "test", "unassigned"):
        raise ValidationError(f"split must be train, val, test or unassigned, not {split!r}")
    task = ws.config.task
    model = model or ws.prelabeler
    if strategy != "random":
        kind = TASK_KINDS.get(task)
        if kind is None:
            raise LabelPilotError(
                f"selecting by {strategy} is not available for {task} workspaces yet",
                hint="use --strategy random, or see the README's active-learning section")
        if kind == "segmenter":
            model = model or default_segmenter(ws.models_dir)
        if model is None:
            raise LabelPilotError(f"name the {kind} model to select with (--model)",
                                  hint="labelpilot models list DIR shows the workspace's models")
        manifest = get_manifest(model, ws.models_dir)
        if manifest.kind != kind and not (kind == "segmenter"
                                          and manifest.kind in SEGMENTER_KINDS):
            raise LabelPilotError(
                f"{model} is a {manifest.kind} model; this {task} workspace selects with a "
                f"{'an interactive segmenter' if kind == 'segmenter' else kind + ' model'}",
                hint="labelpilot models list DIR shows each model's kind")
    n = pool_size(ws, split)
    where = f" in the {split} split" if split else ""
    if n == 0:
        raise LabelPilotError(f"no images left to select from{where}: every image is "
                              "reviewed, being reviewed or labeled by a person",
                              hint="import or upload more images")
    if budget > n:
        raise LabelPilotError(f"the budget of {budget} is larger than the {n} image(s) "
                              f"nobody has reviewed yet{where}",
                              hint=f"ask for {n} or fewer")
    if strategy == "random":
        return SelectParams(strategy, budget, None, split, seed)
    return SelectParams(strategy, budget, model, split, seed,
                        (executor or ExecutorSpec()).params())


@dataclass(frozen=True)
class Informative:
    """The executor's operation that scores an image's informativeness (an `Operation`):
    `kind` is the model's (ocr, detect or segmenter); OCR reads the image's quads (in its
    reference) or, with none and `whole_image`, the image as one line (`OcrModel.read_whole`,
    as pre-labeling reads it), else finds lines."""

    kind: str
    whole_image: bool = False

    def load(self, name: str, models_dir: Path | None, threads: int) -> Any:
        if self.kind == "ocr":
            return load_ocr(name, models_dir, threads=threads)
        if self.kind == "segmenter":
            return load_segmenter(name, models_dir, threads=threads)
        return load_detector(name, models_dir, threads=threads)

    def run(self, model: Any, image: np.ndarray, ref: ImageRef) -> Informativeness:
        if self.kind == "segmenter":
            return score_masks(model, np.ascontiguousarray(image[..., ::-1]))
        if self.kind == "ocr":
            ocr: OcrModel = model
            quads = [np.asarray(q, np.float32) for q in ref.quads]
            if quads:
                lines = ocr.read_quads(image, quads)
            elif self.whole_image:  # each image is one cropped line, read as pre-labeling
                lines = ocr.read_whole(image)  # reads it (upright or upside down)
            else:
                lines = ocr.read(image)
            return score_lines(lines, low_confidence=ocr.settings.low_confidence)
        return score_detections(model, image)


@dataclass(frozen=True)
class Embedding:
    """The executor's operation that embeds an image with the model's backbone (an
    `Operation`; its model is the `FeatureExtractor` of an OCR model's detector or of a
    detector's network). Returns the unit vector's float32 bytes."""

    kind: str

    def load(self, name: str, models_dir: Path | None, threads: int) -> Extractor:
        """The extractor of the loaded model (built once per model in a process: the
        selection's key lookup and this process's worker share it). A segmenter embeds
        with its own image encoder (SAM); one without learnt features (the graph cut),
        with the backbone that ships with LabelPilot: the built-in OCR model's detector
        (a MobileNetV3, ImageNet-pretrained, then trained on text)."""
        kind = self.kind
        model: Any
        if kind == "segmenter":
            model = load_segmenter(name, models_dir, threads=threads)
            if not isinstance(model, SamSegmenter):
                model, kind = load_ocr("ocr", None, threads=threads), "ocr"
        elif kind == "ocr":
            model = load_ocr(name, models_dir, threads=threads)
        else:
            model = load_detector(name, models_dir, threads=threads)
        with _EXTRACTORS_LOCK:
            found = _EXTRACTORS.get(model)
            if found is None:
                sample = np.full((320, 320, 3), 128, np.uint8)
                if kind == "segmenter":
                    found = EncoderFeatures(model)
                elif kind == "ocr":
                    found = FeatureExtractor(model.det.path, prepare=model.det_input,
                                             sample=model.det_input(sample))
                else:
                    found = FeatureExtractor(model.session.path, prepare=model.network_input,
                                             sample=model.network_input(sample))
                _EXTRACTORS[model] = found
        return found

    def run(self, model: Extractor, image: np.ndarray, ref: ImageRef) -> bytes:
        return model.embed(image).tobytes()


class _Scorer:
    """One model's informativeness and embeddings for images, on the selection's
    executor (this process by default, or a Ray cluster)."""

    def __init__(self, ws: Workspace, name: str, executor: ExecutorSpec) -> None:
        self.ws = ws
        manifest = get_manifest(name, ws.models_dir)
        self.kind = ("segmenter" if manifest.kind in SEGMENTER_KINDS else
                     "ocr" if manifest.kind == "ocr" else "detect")
        self.name = name
        self.source = manifest.source
        self.executor = executor
        self._key: str | None = None

    @property
    def key(self) -> str:
        """The embeddings' key (the backbone file's content and tensor), from the
        extractor in this process (stored embeddings are looked up before any runs)."""
        if self._key is None:
            self._key = Embedding(self.kind).load(self.name, self.ws.models_dir, 1).key
        return self._key

    def results(self, op: Operation, refs: list[ImageRef]) -> Iterator[tuple[ImageRef, Any]]:
        """(ref, the operation's result) in order; None for an image that cannot be read."""
        if not refs:
            return
        work = plan_work(self.ws, self.name, op)
        with closing(open_executor(self.executor).map(work, refs)) as results:
            for ref, got in results:
                yield ref, None if isinstance(got, Failure) else got


def _quads(anns: Sequence[Any]) -> list[Any]:
    return [a.shape.corners() for a in anns
            if a.status != "rejected" and isinstance(a.shape, Quad)]


def _uncertainty(ws: Workspace, scorer: _Scorer, rows: Sequence[Any], progress: Progress,
                 done: list[int], total: int) -> dict[int, tuple[float, dict[str, Any], str]]:
    """Each row's stored score under the model, computing and storing the missing ones."""
    with ws.engine.connect() as conn:
        have = scores.scores_for(conn, scorer.source, [r.id for r in rows])
    todo = [r for r in rows if r.id not in have]
    refs: list[ImageRef] = []
    for i in range(0, len(todo), _REFS):  # OCR reads each image's quads
        chunk = todo[i:i + _REFS]
        anns: dict[int, list[Any]] = {}
        if scorer.kind == "ocr":
            with ws.engine.connect() as conn:
                anns = repo.annotations_for_images(conn, [r.id for r in chunk])
        refs += [ImageRef.of(r, _quads(anns.get(r.id, []))) for r in chunk]
    op = Informative(scorer.kind, ws.config.text_lines == "whole-image")

    def save(batch: list[tuple[ImageRef, Informativeness | None]]) -> None:
        new = [(ref.id, inf.score, inf.public(), inf.reason) for ref, inf in batch
               if inf is not None]
        with ws.transaction() as conn:
            scores.save_scores(conn, scorer.source, new)
        have.update((i, (s, p, why)) for i, s, p, why in new)
        done[0] += len(batch)
        progress(done[0], total)

    batches = Batches(save, size=_BATCH, wait_s=_BATCH_S)
    for item in scorer.results(op, refs):
        batches.add(item)
    batches.flush()
    return have


def _embeddings(ws: Workspace, scorer: _Scorer, rows: Sequence[Any], progress: Progress,
                done: list[int], total: int) -> dict[str, np.ndarray]:
    """Each row's content's embedding, computing and storing the missing ones."""
    key = scorer.key
    shas = list(dict.fromkeys(r.sha256 for r in rows))
    with ws.engine.connect() as conn:
        have = scores.embeddings_for(conn, key, shas)
    first: dict[str, Any] = {}
    for r in rows:
        first.setdefault(r.sha256, r)
    todo = [ImageRef.of(first[s]) for s in shas if s not in have]

    def save(batch: list[tuple[ImageRef, bytes | None]]) -> None:
        new = {ref.sha256: v for ref, v in batch if v is not None}
        with ws.transaction() as conn:
            scores.save_embeddings(conn, key, new)
        have.update(new)
        done[0] += len(batch)
        progress(done[0], total)

    batches = Batches(save, size=_BATCH, wait_s=_BATCH_S)
    for item in scorer.results(Embedding(scorer.kind), todo):
        batches.add(item)
    batches.flush()
    return {sha: np.frombuffer(v, np.float32) for sha, v in have.items()}


def select_images(ws: Workspace, params: SelectParams, *,
                  progress: Progress = lambda done, total: None) -> dict[str, Any]:
    """Run a selection (see the module) and make it the labeling queue's order. Returns
    what was chosen, in order, with scores and reasons, and what was computed."""
    p = params
    with ws.engine.connect() as conn:
        pool = scores.pool(conn, p.split)
        labeled = scores.labeled(conn) if p.strategy in ("diversity", "hybrid") else []
    if len(pool) < p.budget:  # reviewed since the plan was checked
        raise LabelPilotError(f"only {len(pool)} image(s) are left to select from, fewer "
                              f"than the budget of {p.budget}", hint="ask for fewer")
    chosen: list[tuple[Any, float | None, str, dict[str, Any]]] = []
    model_source = None
    done = [0]
    if p.strategy == "random":
        order = np.random.default_rng(p.seed).permutation(len(pool))[:p.budget]
        chosen = [(pool[int(k)], None, f"random draw (seed {p.seed})", {}) for k in order]
    else:
        assert p.model is not None
        scorer = _Scorer(ws, p.model, ExecutorSpec.from_params(p.executor))
        model_source = scorer.source
        need_scores = p.strategy in ("uncertainty", "hybrid")
        total = (len(pool) if need_scores else 0) + (
            len(pool) + len(labeled) if p.strategy != "uncertainty" else 0)
        progress(0, total)
        by_id = {r.id: r for r in pool}
        if need_scores:
            sc = _uncertainty(ws, scorer, pool, progress, done, total)
            ranked = sorted((i for i in by_id if i in sc), key=lambda i: (-sc[i][0], i))
            if p.strategy == "uncertainty":
                chosen = [(by_id[i], sc[i][0], sc[i][2], sc[i][1]) for i in ranked[:p.budget]]
            else:
                candidates = [by_id[i] for i in ranked[:HYBRID_FACTOR * p.budget]]
                chosen = _spread(ws, scorer, candidates, labeled, p, progress, done, total,
                                 lambda r, d: (sc[r.id][0], f"{sc[r.id][2]}; {_far(d, True)}",
                                               sc[r.id][1]), first_is_top=True)
        else:
            chosen = _spread(ws, scorer, pool, labeled, p, progress, done, total,
                             lambda r, d: (min(1.0, d / 2), _far(d)[0].upper() + _far(d)[1:],
                                           {"distance": round(min(d, 2.0), 4)}))
        progress(total, total)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    picked = []
    for row, score, reason, parts in chosen:
        picked.append((row.id, {"strategy": p.strategy, "score": _round(score),
                                "reason": reason, "model": model_source, "parts": parts,
                                "selected_at": when}))
    with ws.transaction() as conn:
        unranked = scores.set_queue(conn, picked)
    return {"strategy": p.strategy, "model": model_source, "budget": p.budget,
            "executor": ExecutorSpec.from_params(p.executor).kind,
            "split": p.split, "seed": p.seed, "pool": len(pool),
            "computed": done[0], "unranked": unranked,
            "selected": [{"file_name": row.file_name, "score": _round(score), "reason": reason}
                         for row, score, reason, _ in chosen]}


def _far(d: float, most_uncertain: bool = False) -> str:
    if not np.isfinite(d):
        return ("the most uncertain image: the first pick, with nothing labeled yet"
                if most_uncertain else "a typical image (the nearest to the pool's mean): "
                "the first pick, with nothing labeled yet")
    return f"unlike the images labeled or picked before (distance {d:.2f})"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _spread(ws: Workspace, scorer: _Scorer, candidates: Sequence[Any], labeled: Sequence[Any],
            p: SelectParams, progress: Progress, done: list[int], total: int,
            describe: Callable[[Any, float], tuple[float, str, dict[str, Any]]],
            first_is_top: bool = False) -> list[tuple[Any, float | None, str, dict[str, Any]]]:
    """k-center greedy over the candidates' embeddings, away from the labeled images'
    (with nothing labeled, starting from the first candidate where `first_is_top`)."""
    vecs = _embeddings(ws, scorer, [*candidates, *labeled], progress, done, total)
    cands = [r for r in candidates if r.sha256 in vecs]
    pool_v = np.stack([vecs[r.sha256] for r in cands]) if cands else np.zeros((0, 1))
    lab = [vecs[r.sha256] for r in labeled if r.sha256 in vecs]
    lab_v = np.stack(lab) if lab else np.zeros((0, pool_v.shape[1]), np.float32)
    out: list[tuple[Any, float | None, str, dict[str, Any]]] = []
    first = 0 if first_is_top and cands else None
    for k, d in k_center_greedy(pool_v, lab_v, p.budget, seed=p.seed, first=first):
        row = cands[k]
        score, reason, parts = describe(row, d)
        out.append((row, score, reason, parts))
    return out
