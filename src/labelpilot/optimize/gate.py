"""`labelpilot models optimize`: make a faster variant of a workspace's model and keep it
only if it is as accurate, measured on the workspace's own data.

Each file of the model that can be made cheaper (a detector's network; an OCR model's
detector and recognizer, see `optimize.subjects`) is tried in turn: INT8 (see
`optimize.quantize`) calibrated on accepted images of one split (`train` by default),
then more careful INT8, then (recognizers) a smaller input height and the output layer
pruned to the characters in use, alone, together and in INT8. Each try is scored with
the original on another split (`test`, else `val`) with the metric of what it replaces
(detectors: mAP@0.5 by the COCO protocol; OCR: detection hmean, line accuracy), and the
stage it runs is timed with the original's on the same images in the same run,
interleaved, one thread (as `autolabel` runs each image). A try passes when it is at
least `min_speedup` times faster and loses at most `max_loss` points, and of those that
pass the fastest is kept; the others are refused with both figures and the reason, and
their files deleted. The kept files of all roles make one variant, timed on the whole
pre-labeling path and recorded in the model's manifest (files, SHA-256, metrics, speed,
size, calibration, settings it runs with, date); loading the model then runs its fastest
kept variant for the machine's device (`models.registry.serving_manifest`). The built-in
OCR model's variant goes into a workspace copy of its manifest (its own files stay where
they are).
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

from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.executors import ExecutorSpec
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
    prune: bool = True  # OCR: also try the recognizer pruned to the characters in use
    only: str | None = None  # one role to try (OCR: det or rec); None: every role
    # where the tries are scored (ExecutorSpec.params(); None: here); they are timed here
    executor: dict[str, Any] | None = None


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


def time_models(run: Callable[[Any, Any], Any], models: list[Any], items: list[Any]
                ) -> list[float]:
    """Median milliseconds per item of each model running `run` (a stage, or the whole
    pre-labeling path), on the same items, interleaved (so that the machine's ups and
    downs fall on all of them), after a warm-up."""
    for m in models:
        for item in items[:2]:
            run(m, item)
    seconds: list[list[float]] = [[] for _ in models]
    for item in items:
        for k, m in enumerate(models):
            t = time.perf_counter()
            run(m, item)
            seconds[k].append(time.perf_counter() - t)
    return [1000 * statistics.median(s) for s in seconds]


def workspace_manifest(ws: Workspace, name: str) -> ModelManifest:
    """The model to optimize: a workspace model, or the built-in OCR model (its variants
    are kept in a workspace copy of its manifest, made when one is kept)."""
    from labelpilot.models.registry import get_manifest

    manifest = get_manifest(name, ws.models_dir)
    mine = manifest.root is not None and manifest.root.parent.resolve() == ws.models_dir.resolve()
    if not mine and manifest.kind != "ocr":
        raise LabelPilotError(f"{name} is built in; only the workspace's own models are "
                              "optimized", hint="install it into the workspace first "
                                                "(labelpilot models add)")
    if manifest.kind not in ("detect", "ocr"):
        raise LabelPilotError(f"{name} is a {manifest.kind} model; optimization covers "
                              "detectors and OCR models so far",
                              hint="optimize a detector or an OCR model")
    return manifest


def adopted(manifest: ModelManifest, folder: Path) -> ModelManifest:
    """A built-in model's manifest as a workspace model in `folder`: the same files, by
    absolute path (they stay where the package installed them, checked by SHA-256)."""
    from dataclasses import replace

    from labelpilot.models.manifest import ModelFile

    files = {role: ModelFile(str(manifest.file(role)[0].resolve()), f.sha256)
             for role, f in manifest.files.items()}
    return replace(manifest, files=files, root=folder, variants={})


def optimize_model(ws: Workspace, name: str, cfg: OptimizeConfig,
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Make the variants asked for, gate them, record the kept ones; the report says
    what each measured and why it was kept or refused."""
    from labelpilot.optimize.subjects import DetectorSubject, OcrSubject, Subject

    check_config(cfg)
    manifest = workspace_manifest(ws, name)
    manifest.verify()
    split, scored, calib = scoring_splits(ws, cfg.calibrate_on)
    if len(calib) < MIN_CALIBRATION:
        raise LabelPilotError(f"the {cfg.calibrate_on} split has {len(calib)} images with "
                              f"accepted labels; at least {MIN_CALIBRATION} are needed to "
                              "calibrate INT8", hint="review more images of that split, or "
                                                     "calibrate on the other one")
    step = max(1, len(calib) // max(1, cfg.images))
    calib = calib[::step][:cfg.images]
    subject: Subject
    if manifest.kind == "detect":
        subject = DetectorSubject(ws, manifest, cfg.method, split, scored, calib, TIMED_IMAGES)
    else:
        subject = OcrSubject(ws, manifest, cfg.method, split, scored, calib, cfg.calibrate_on,
                             TIMED_IMAGES, cfg.prune)
    if cfg.executor:
        subject.executor = ExecutorSpec.from_params(cfg.executor)
    if cfg.only is not None:
        known = [r.name for r in subject.roles]
        if cfg.only not in known:
            raise LabelPilotError(f"{name} has no {cfg.only!r} file to optimize",
                                  hint=f"--only one of: {', '.join(known)}")
        subject.roles = [r for r in subject.roles if r.name == cfg.only]
    total = 2 + sum(len(r.tries) for r in subject.roles)
    done = 0

    def report(stage: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(stage, min(done, total), total)

    base = subject.score(subject.fp32, subject.all_metrics)
    report("scored the original")
    folder = ws.models_dir / name
    # a folder of this run's own (two runs on one model do not clear each other's files)
    ws.models_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".optimize-{name}-", dir=ws.models_dir))
    tries: list[dict[str, Any]] = []
    kept: dict[str, dict[str, Any]] = {}  # role -> the kept try (its files in `work`)
    try:
        for role in subject.roles:
            held = False  # the try before kept the accuracy (whether or not fast enough)
            for n, t in enumerate(role.tries, 1):
                report(f"{role.name}: {t.label}")
                entry: dict[str, Any] = {"variant": f"{role.name}-{n}", "role": role.name,
                                         "try": n, "quantized": t.label, "device": "cpu",
                                         "metric": role.metrics[0]}
                if t.slower and held:
                    continue
                try:
                    made = t.make(work)
                except ModelError as e:
                    tries.append({**entry, "size_bytes": 0, "kept": False, "reason": e.message})
                    continue
                entry.update(made.info)
                entry["size_bytes"] = sum(p.stat().st_size for p in made.files.values())
                candidate = manifest.with_variant_files(
                    {r: (p, sha256_file(p)) for r, p in made.files.items()},
                    made.preprocessing)
                try:
                    model = subject.load(candidate)
                except ModelError as e:  # its outputs do not fit the model's layout
                    tries.append({**entry, "kept": False, "reason": "the variant does not "
                                  f"load as this model: {e.message}"})
                    continue
                try:
                    got = subject.score(model, role.metrics)
                    ms_fp32, ms = time_models(role.run, [subject.fp32, model],
                                              subject.timed_items(role))
                except Exception as e:  # ONNX Runtime refuses to run it on some input
                    tries.append({**entry, "kept": False, "reason": "the variant fails on "
                                  f"the scored images: {type(e).__name__}: {str(e)[:200]}"})
                    continue
                losses = {m: 100 * (base[m] - got[m]) for m in role.metrics}
                metric = max(losses, key=lambda m: losses[m])
                loss, speedup = losses[metric], (ms_fp32 / ms if ms > 0 else 0.0)
                entry.update(metric=metric, value=got[metric], scores=got,
                             loss_points=round(loss, 2), ms_per_image=round(ms, 2),
                             fp32_ms_per_image=round(ms_fp32, 2), speedup=round(speedup, 2))
                reasons = []
                if loss > cfg.max_loss:
                    reasons.append(f"it loses {loss:.1f} points of {metric} ({base[metric]:.3f} "
                                   f"-> {got[metric]:.3f}; at most {cfg.max_loss:g} allowed)")
                if speedup < cfg.min_speedup:
                    reasons.append(f"its {role.name} stage is {speedup:.2f}x as fast "
                                   f"({ms_fp32:.1f} -> {ms:.1f} ms an image; at least "
                                   f"{cfg.min_speedup:g}x asked)")
                entry["kept"] = not reasons
                entry["reason"] = "; ".join(reasons) if reasons else (
                    f"{role.name}: {speedup:.2f}x faster, {-loss:+.1f} points of {metric}")
                tries.append(entry)
                held = loss <= cfg.max_loss
                # of the tries that pass, the fastest is kept
                if not reasons and speedup > kept.get(role.name, {}).get("speedup", 0.0):
                    kept[role.name] = {**entry, "files": made.files,
                                       "preprocessing": made.preprocessing}
            best = kept.get(role.name)
            for other in tries:  # the others that passed give way to the fastest
                if best and other["role"] == role.name and other["kept"] \
                        and other["try"] != best["try"]:
                    other["kept"] = False
                    other["reason"] = (f"passed ({other['reason'].split(': ', 1)[-1]}), but "
                                       f"try {best['try']} is faster ({best['speedup']:.2f}x)")
        record = None
        if kept:
            report("timing the kept variant")
            record = _record(ws, subject, manifest, folder, work, kept, base, split, scored,
                             calib, cfg)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("done")
    fp32_size = sum(manifest.file(r)[0].stat().st_size for r in manifest.files)
    return {"model": name, "kind": manifest.kind, "split": split, "scored_images": len(scored),
            "timed_images": len(subject.timed_items(None)),
            "fp32": {**base, "size_bytes": fp32_size},
            "calibration": {"split": cfg.calibrate_on, "images": len(calib), "method": cfg.method},
            "gate": {"max_loss": cfg.max_loss, "min_speedup": cfg.min_speedup},
            "tries": tries, "kept": record is not None, "variant": record}


def _record(ws: Workspace, subject: Any, manifest: ModelManifest, folder: Path, work: Path,
            kept: dict[str, dict[str, Any]], base: dict[str, float], split: str,
            scored: list[Any], calib: list[Any], cfg: OptimizeConfig) -> dict[str, Any]:
    """Time the kept files together on the whole pre-labeling path, move them into the
    model's folder and record the variant in its manifest (written whole, then moved
    over the old one). Returns the record."""
    files = {r: p for t in kept.values() for r, p in t["files"].items()}
    preprocessing = {k: v for t in kept.values() for k, v in t["preprocessing"].items()}
    # the files an earlier variant made for the roles this run did not try stay in it
    tried = {r.name for r in subject.roles}
    earlier = ModelManifest.load(folder / "manifest.json").variants \
        if (folder / "manifest.json").exists() else {}
    carried = {k: v for k, v in earlier.items() if v.get("device") == "cpu"}
    carried_roles: dict[str, Any] = {}
    for v in carried.values():
        for role, info in v.get("roles", {}).items():
            if role not in tried and role not in files:
                carried_roles[role] = info
                preprocessing.update(info.get("preprocessing", {}))
                for r, f in v["files"].items():
                    if r == role or (role == "rec" and r == "dict"):
                        files[r] = folder / f["path"]
    combined = manifest.with_variant_files({r: (p, sha256_file(p)) for r, p in files.items()},
                                           preprocessing)
    if subject.stage_is_whole and not carried_roles:  # measured already
        (only,) = kept.values()
        ms_fp32, ms, speedup = only["fp32_ms_per_image"], only["ms_per_image"], only["speedup"]
    else:
        ms_fp32, ms = time_models(subject.run_whole, [subject.fp32, subject.load(combined)],
                                  subject.timed_items(None))
        speedup = round(ms_fp32 / ms, 2) if ms > 0 else 0.0
    folder.mkdir(parents=True, exist_ok=True)
    final: dict[str, dict[str, str]] = {}
    for role, path in files.items():
        name = path.name if role != "model" else "model.int8.onnx"
        if path.parent != folder:
            path.replace(folder / name)
        final[role] = {"path": name, "sha256": sha256_file(folder / name)}
    size = sum((folder / f["path"]).stat().st_size for f in final.values()) + sum(
        manifest.file(r)[0].stat().st_size for r in manifest.files if r not in final)
    first = next(iter(kept.values()))
    record: dict[str, Any] = {
        "precision": "int8" if any(t.get("precision") == "int8" for t in
                                   [*kept.values(), *carried_roles.values()]) else "fp32",
        "device": "cpu",
        "quantized": "; ".join([*(f"{r}: {t['quantized']}" for r, t in kept.items()),
                                *(f"{r}: {v['quantized']} (kept before)"
                                  for r, v in carried_roles.items())]),
        "layers_in_float": sum(int(t.get("layers_in_float", 0)) for t in kept.values()),
        "size_bytes": size, "ms_per_image": round(ms, 2), "fp32_ms_per_image": round(ms_fp32, 2),
        "speedup": speedup, "files": final,
        "preprocessing": preprocessing,
        "metric": {"name": first["metric"], "split": split, "images": len(scored),
                   "fp32": base[first["metric"]], "value": first["value"]},
        "metrics": {m: {"fp32": base[m], "value": t["scores"][m]} for t in kept.values()
                    for m in t["scores"]},
        "roles": {r: {k: t[k] for k in ("quantized", "precision", "speedup", "loss_points",
                                         "ms_per_image", "fp32_ms_per_image") if k in t}
                  | {k: t[k] for k in ("classes", "pruned_to", "preprocessing") if t.get(k)}
                  for r, t in kept.items()} | carried_roles,
        "fp32_size_bytes": sum(manifest.file(r)[0].stat().st_size for r in manifest.files),
        "calibration": {"split": cfg.calibrate_on, "images": len(calib),
                        "method": first.get("method", cfg.method)},
        "created": datetime.now(UTC).isoformat(timespec="seconds")}
    path = folder / "manifest.json"
    fresh = ModelManifest.load(path) if path.exists() else adopted(manifest, folder)
    # this run's variant supersedes the model's earlier ones for the device
    earlier = {k: v for k, v in fresh.variants.items() if v.get("device") == "cpu"}
    fresh.variants = {k: v for k, v in fresh.variants.items() if k not in earlier}
    fresh.variants[f"{record['precision']}-cpu"] = record
    tmp = work / "manifest.json"
    tmp.write_bytes(fresh.to_json())
    tmp.replace(path)
    still = {f["path"] for v in fresh.variants.values() for f in v["files"].values()}
    for v in earlier.values():  # files only the superseded variants used
        for f in v["files"].values():
            if f["path"] not in still and "/" not in f["path"]:
                (folder / f["path"]).unlink(missing_ok=True)
    return record
