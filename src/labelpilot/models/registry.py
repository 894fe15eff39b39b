"""Which models exist: the built-in ones and those in a workspace's `models/` folder."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import ModelError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    task: str
    kind: str
    builtin: bool
    description: str
    metrics: dict[str, Any]
    classes: tuple[str, ...] = ()  # a detector's class names (its output channels)


def _info(m: ModelManifest, builtin: bool) -> ModelInfo:
    classes = tuple(n for n in m.labels if n) if m.task == "detect" else ()
    return ModelInfo(m.name, m.version, m.task, m.kind, builtin, m.description, m.metrics,
                     classes)


def _graphcut_manifest() -> ModelManifest:
    return ModelManifest(name="graphcut", version="1", task="segment", kind="graphcut",
                         files={}, description="interactive graph cut (no weights; the "
                                               "offline default for click/box to mask)")


def _builtins() -> dict[str, Any]:
    from labelpilot.models.ocr import builtin_manifest

    return {"ocr": builtin_manifest, "graphcut": _graphcut_manifest}


SEGMENTER_KINDS = ("graphcut", "sam", "semantic")


def segmenter_manifest(name: str | None, models_dir: Path | None) -> ModelManifest:
    """The manifest of interactive segmenter `name` (None: the best available); a model of
    another kind is refused (422 on the API)."""
    from labelpilot.segment.base import PromptError

    name = name or default_segmenter(models_dir)
    manifest = get_manifest(name, models_dir)
    if manifest.kind not in SEGMENTER_KINDS:
        raise PromptError(f"model {name!r} is a {manifest.kind} model, not an interactive "
                          "segmenter", hint="pick one of kind " + ", ".join(SEGMENTER_KINDS))
    return manifest


def default_segmenter(models_dir: Path | None) -> str:
    """The best interactive segmenter available here: an installed SAM-family model, else
    the built-in graph cut."""
    if models_dir is not None and models_dir.is_dir():
        sams = [m.name for m in workspace_manifests(models_dir).values() if m.kind == "sam"]
        if sams:
            return sams[0]
    return "graphcut"


def workspace_manifests(models_dir: Path) -> dict[str, ModelManifest]:
    out = {}
    for path in sorted(models_dir.glob("*/manifest.json")):
        m = ModelManifest.load(path)
        out[m.name] = m
    return out


def list_models(models_dir: Path | None) -> list[ModelInfo]:
    infos = []
    for name, make in _builtins().items():
        try:
            m = make()
        except ModelError as e:
            infos.append(ModelInfo(name, "?", "?", "?", True, f"unavailable: {e.message}", {}))
            continue
        infos.append(_info(m, True))
    if models_dir is not None and models_dir.is_dir():
        for m in workspace_manifests(models_dir).values():
            infos.append(_info(m, False))
    return infos


def get_manifest(name: str, models_dir: Path | None) -> ModelManifest:
    if models_dir is not None and models_dir.is_dir():
        found = workspace_manifests(models_dir).get(name)
        if found is not None:
            return found
    make = _builtins().get(name)
    if make is None:
        known = [i.name for i in list_models(models_dir)]
        raise ModelError(f"no model {name!r}", hint=f"known models: {', '.join(known)}")
    return make()  # type: ignore[no-any-return]


_LOADED: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def load_model(name: str, models_dir: Path | None, *, threads: int | None = None) -> Any:
    """The plug-in for `name`, loaded once per process (checksums are checked then). A model
    retrained or re-installed under the same name (another version or other files) is
    loaded again."""
    manifest = get_manifest(name, models_dir)
    files = tuple(sorted((role, f.path, f.sha256) for role, f in manifest.files.items()))
    key = (str(manifest.root), manifest.name, manifest.version, files, threads)
    with _LOCK:
        model = _LOADED.get(key)
        if model is None:
            model = _instantiate(manifest, threads)
            _LOADED[key] = model
    return model


def _instantiate(manifest: ModelManifest, threads: int | None) -> Any:
    kind = manifest.kind
    if kind == "ocr":
        from labelpilot.models.ocr import OcrModel

        return OcrModel(manifest, threads=threads)
    if kind == "detect":
        from labelpilot.models.detect import DetectorModel

        return DetectorModel(manifest, threads=threads)
    if kind == "graphcut":
        from labelpilot.segment.classical import GraphCutSegmenter

        return GraphCutSegmenter()
    if kind == "sam":
        from labelpilot.segment.sam import SamSegmenter

        return SamSegmenter(manifest, threads=threads)
    if kind == "semantic":
        from labelpilot.segment.semantic import SemanticSegmenter

        return SemanticSegmenter(manifest, threads=threads)
    raise ModelError(f"model {manifest.name!r} is of kind {kind!r}, which this version cannot "
                     "run", hint="known kinds: ocr, detect, graphcut, sam, semantic")
