"""`labelpilot models optimize`: make a faster variant of a workspace's model and keep it
only if it is as accurate, measured on the workspace's own data.

A variant (INT8 for the CPU, see `optimize.quantize`) is calibrated on accepted images of
one split (`train` by default) and scored, with the original, on another (`test`, else
`val`), with the task's metric (detectors: mAP@0.5 by the COCO protocol); both are timed
on the same images in the same run, interleaved (what pre-labeling costs per image:
preprocessing, the network and decoding, one thread, as `autolabel` runs each image). A
variant is kept when it is at least `min_speedup` times faster and loses at most
`max_loss` points; otherwise it is refused with both figures and the reason, and its file
deleted. When quantizing the body through loses too much, a second try quantizes its
convolutions alone and keeps the prediction layers in float. Kept variants are recorded
in the model's manifest (file, SHA-256, metric, speed, size, calibration, date); loading
a model then runs its fastest kept variant for the machine's device
(`models.registry.serving_manifest`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import sha256_file
from labelpilot.store import repo
from labelpilot.workspace import Workspace

MIN_CALIBRATION = 8  # images: fewer give activation ranges that do not hold on new images
TIMED_IMAGES = 20
DEVICES = ("cpu", "cuda", "tensorrt")


@dataclass
class OptimizeConfig:
    int8: bool = True
    fp16: bool = False
    device: str = "cpu"
    calibrate_on: str = "train"
    images: int = 64  # calibration images, at most
    method: str = "percentile"  # the best of the three on yolox-nano (see the benchmark)
    max_loss: float = 1.0  # points of the metric (x100)
    min_speedup: float = 1.5


def cpu_detector(manifest: ModelManifest) -> Any:
    from labelpilot.models.detect import DetectorModel

    return DetectorModel(manifest, threads=1)


def check_config(cfg: OptimizeConfig) -> None:
    """What was asked for can be made here: the device and its provider, the precision,
    the calibration method."""
    from labelpilot.models.runtime import _ort
    from labelpilot.optimize.quantize import METHODS

    if cfg.method not in METHODS:
        raise LabelPilotError(f"unknown calibration method {cfg.method!r}",
                              hint=f"one of: {', '.join(METHODS)}")
    if cfg.device not in DEVICES:
        raise LabelPilotError(f"unknown device {cfg.device!r}", hint=f"one of: {', '.join(DEVICES)}")
    if cfg.fp16 and cfg.device == "cpu":
        raise LabelPilotError("FP16 variants are for GPUs: ONNX Runtime's CPU kernels run "
                              "FP16 slower than FP32", hint="use --device cuda or tensorrt "
                              "on a machine with an NVIDIA GPU, or --int8 for the CPU")
    if cfg.device != "cpu":
        wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[
            cfg.device]
        if wanted not in _ort().get_available_providers():
            raise LabelPilotError(f"{wanted} is not available in this onnxruntime build: "
                                  f"{cfg.device} variants cannot be made or measured here",
                                  hint="pip install 'labelpilot[gpu]' on a machine with an "
                                       "NVIDIA GPU, or use --device cpu")
        raise LabelPilotError(f"{cfg.device} variants are not made yet (FP16 and TensorRT "
                              "engines are planned)", hint="use --device cpu --int8")
    if not cfg.int8:
        raise LabelPilotError("nothing to make: ask for --int8 (CPU) or --fp16 (GPU)")


def scoring_splits(ws: Workspace, calibrate_on: str) -> tuple[str, list[Any], list[Any]]:
    """The split to score on (test, else val), its images with ground truth, and the
    calibration images (accepted labels in `calibrate_on`)."""
    if calibrate_on not in ("train", "val"):
        raise LabelPilotError(f"--calibrate-on must be train or val, not {calibrate_on!r}")
    with ws.engine.connect() as conn:
        def labeled(split: str) -> list[Any]:
            rows, anns = repo.confirmed_labels(conn, split)
            return [r for r in rows if anns.get(r.id)]
        candidates = {s: labeled(s) for s in ("test", "val")}
        scored = next((s for s, rows in candidates.items() if rows), None)
        if scored is None:
            raise LabelPilotError("the workspace has no test or val split with accepted labels "
                                  "to score the model on: a variant cannot be checked",
                                  hint="put some reviewed images in the test split "
                                       "(labelpilot split, or the overview page)")
        if scored == calibrate_on:
            raise LabelPilotError(f"the model is scored on the {scored} split, so it cannot be "
                                  "calibrated on it too", hint="use --calibrate-on train")
        calib = candidates[calibrate_on] if calibrate_on in candidates else labeled(calibrate_on)
        return scored, candidates[scored], calib


def calibration_feeds(model: Any, ws: Workspace, rows: list[Any]) -> list[dict[str, np.ndarray]]:
    """The network's inputs for the calibration images, preprocessed as the model does."""
    names = model.session.input_names
    out = []
    for r in rows:
        x, sx, sy = model.preprocess(ws.blobs.load_image(r))
        feed = {names[0]: x}
        if len(names) > 1:  # PP-PicoDet's scale_factor
            feed[names[1]] = np.array([[sy, sx]], np.float32)
        out.append(feed)
    return out


def time_models(models: list[Any], images: list[np.ndarray]) -> list[float]:
    """Median milliseconds per image of each model, on the same images, interleaved (so
    that the machine's ups and downs fall on all of them), after a warm-up."""
    for m in models:
        for img in images[:2]:
            m.detect(img)
    seconds: list[list[float]] = [[] for _ in models]
    for img in images:
        for k, m in enumerate(models):
            t = time.perf_counter()
            m.detect(img)
            seconds[k].append(time.perf_counter() - t)
    return [1000 * statistics.median(s) for s in seconds]


def optimize_model(ws: Workspace, name: str, cfg: OptimizeConfig,
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Make the variants asked for, gate them, record the kept ones; the report says
    what each measured and why it was kept or refused."""
    from labelpilot.evaluation.run import evaluate_detector
    from labelpilot.models.registry import get_manifest
    from labelpilot.optimize.quantize import quantize_int8

    check_config(cfg)
    manifest = get_manifest(name, ws.models_dir)
    if manifest.root is None or manifest.root.parent.resolve() != ws.models_dir.resolve():
        raise LabelPilotError(f"{name} is built in; only the workspace's own models are "
                              "optimized", hint="install it into the workspace first "
                                                "(labelpilot models add)")
    if manifest.kind != "detect":
        raise LabelPilotError(f"{name} is a {manifest.kind} model; optimization covers "
                              "detectors so far", hint="optimize a detector")
    manifest.verify()
    split, scored, calib = scoring_splits(ws, cfg.calibrate_on)
    if len(calib) < MIN_CALIBRATION:
        raise LabelPilotError(f"the {cfg.calibrate_on} split has {len(calib)} images with "
                              f"accepted labels; at least {MIN_CALIBRATION} are needed to "
                              "calibrate INT8", hint="review more images of that split, or "
                                                     "calibrate on the other one")
    step = max(1, len(calib) // max(1, cfg.images))
    calib = calib[::step][:cfg.images]
    fp32 = cpu_detector(manifest)
    feeds = calibration_feeds(fp32, ws, calib)

    def report(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    base = evaluate_detector(ws, fp32, split)
    report("scored the original", 1, 4)
    src, _ = manifest.file("model")
    # a folder of this run's own (two runs on one model do not clear each other's files)
    work = Path(tempfile.mkdtemp(prefix=".optimize-", dir=manifest.root))
    timed = [ws.blobs.load_image(r) for r in scored[:TIMED_IMAGES]]
    tries: list[dict[str, Any]] = []
    kept: dict[str, Any] | None = None
    try:
        for attempt, careful in enumerate((False, True), 1):
            path = work / f"int8-{attempt}.onnx"
            try:
                floats, used = quantize_int8(src, path, feeds, method=cfg.method,
                                             careful=careful)
            except ModelError as e:
                tries.append({"variant": "int8-cpu", "try": attempt, "precision": "int8",
                              "device": "cpu", "layers_in_float": 0, "size_bytes": 0,
                              "kept": False, "reason": e.message})
                break
            report(f"quantized (try {attempt})", 1 + attempt, 4)
            entry: dict[str, Any] = {
                "variant": "int8-cpu", "try": attempt, "precision": "int8", "device": "cpu",
                "quantized": "convolutions only" if careful else "the body through",
                "layers_in_float": len(floats), "size_bytes": path.stat().st_size,
                "method": used}
            candidate = manifest.with_variant_files({"model": (path, sha256_file(path))})
            try:
                model = cpu_detector(candidate)
            except ModelError as e:  # its outputs do not fit the model's layout
                entry.update(kept=False, reason=f"the variant does not load as this model: "
                                                f"{e.message}")
                tries.append(entry)
                continue
            got = evaluate_detector(ws, model, split)
            ms_fp32, ms = time_models([fp32, model], timed)
            loss = 100 * (base["map50"] - got["map50"])
            speedup = ms_fp32 / ms if ms > 0 else 0.0
            entry.update(map50=got["map50"], loss_points=round(loss, 2), ms_per_image=round(ms, 2),
                         fp32_ms_per_image=round(ms_fp32, 2), speedup=round(speedup, 2))
            reasons = []
            if loss > cfg.max_loss:
                reasons.append(f"it loses {loss:.1f} points of mAP50 ({base['map50']:.3f} -> "
                               f"{got['map50']:.3f}; at most {cfg.max_loss:g} allowed)")
            if speedup < cfg.min_speedup:
                reasons.append(f"it is {speedup:.2f}x as fast ({ms_fp32:.1f} -> {ms:.1f} ms an "
                               f"image; at least {cfg.min_speedup:g}x asked)")
            entry["kept"] = not reasons
            entry["reason"] = "; ".join(reasons) if reasons else (
                f"{speedup:.2f}x faster, {-loss:+.1f} points of mAP50")
            tries.append(entry)
            if not reasons:
                kept = {**entry, "path": path}
                break
            if loss <= cfg.max_loss:  # too slow: keeping layers in float will not help
                break
        if kept is not None:
            final = manifest.root / "model.int8.onnx"
            Path(kept.pop("path")).replace(final)
            record = {k: v for k, v in kept.items()
                      if k not in ("kept", "reason", "variant", "try", "method")}
            record.update(
                files={"model": {"path": final.name, "sha256": sha256_file(final)}},
                metric={"name": "map50", "split": split, "images": len(scored),
                        "fp32": base["map50"], "value": kept["map50"]},
                fp32_size_bytes=src.stat().st_size,
                calibration={"split": cfg.calibrate_on, "images": len(calib),
                             "method": kept["method"]},
                created=datetime.now(UTC).isoformat(timespec="seconds"))
            fresh = ModelManifest.load(manifest.root / "manifest.json")
            fresh.variants["int8-cpu"] = record
            tmp = work / "manifest.json"  # written whole, then moved over the old one
            tmp.write_bytes(fresh.to_json())
            tmp.replace(manifest.root / "manifest.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("done", 4, 4)
    return {"model": name, "split": split, "scored_images": len(scored),
            "timed_images": len(timed),
            "fp32": {"map50": base["map50"], "size_bytes": src.stat().st_size},
            "calibration": {"split": cfg.calibrate_on, "images": len(calib), "method": cfg.method},
            "gate": {"max_loss": cfg.max_loss, "min_speedup": cfg.min_speedup},
            "tries": tries, "kept": kept is not None}
