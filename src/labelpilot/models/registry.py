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


def _builtins() -> dict[str, Any]:
    from labelpilot.models.ocr import builtin_manifest

    return {"ocr": builtin_manifest}


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
        infos.append(ModelInfo(m.name, m.version, m.task, m.kind, True, m.description, m.metrics))
    if models_dir is not None and models_dir.is_dir():
        for m in workspace_manifests(models_dir).values():
            infos.append(ModelInfo(m.name, m.version, m.task, m.kind, False, m.description,
                                   m.metrics))
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


_LOADED: dict[tuple[str, str, int | None], Any] = {}
_LOCK = threading.Lock()


def load_model(name: str, models_dir: Path | None, *, threads: int | None = None) -> Any:
    """The plug-in for `name`, loaded once per process (checksums are checked then)."""
    manifest = get_manifest(name, models_dir)
    key = (str(manifest.root), manifest.name, threads)
    with _LOCK:
        model = _LOADED.get(key)
        if model is None:
            if manifest.kind != "ocr":
                raise ModelError(f"model {name!r} is a {manifest.kind!r} model; this version "
                                 "runs OCR models")
            from labelpilot.models.ocr import OcrModel

            model = OcrModel(manifest, threads=threads)
            _LOADED[key] = model
    return model
