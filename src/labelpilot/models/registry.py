"""Which models exist (the built-in ones and those in a workspace's `models/` folder), and
the kind -> plug-in table that loads them. Plug-ins never import this module."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from labelpilot.errors import ModelError, ModelNotFoundError, PromptError
from labelpilot.models.base import InteractiveSegmenter, Predictor
from labelpilot.models.manifest import ModelManifest

if TYPE_CHECKING:
    from labelpilot.models.detect import DetectorModel
    from labelpilot.models.ocr import OcrModel


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
    trainable: bool = False  # a detector custom auto-label can start from (a YOLOX head)
    # optimized variants kept by the accuracy gate, by name (see ModelManifest.variants)
    variants: dict[str, Any] = field(default_factory=dict)


def _info(m: ModelManifest, builtin: bool) -> ModelInfo:
    detector = m.task == "detect"
    classes = tuple(n for n in m.labels if n) if detector else ()
    return ModelInfo(m.name, m.version, m.task, m.kind, builtin, m.description, m.metrics,
                     classes, detector and m.preprocessing.get("layout") == "yolox",
                     {k: {f: v for f, v in d.items() if f != "files"}
                      for k, d in m.variants.items()})


def _graphcut_manifest() -> ModelManifest:
    return ModelManifest(name="graphcut", version="1", task="segment", kind="graphcut",
                         files={}, description="interactive graph cut (no weights; the "
                                               "offline default for click/box to mask)")


def _builtins() -> dict[str, Callable[[], ModelManifest]]:
    from labelpilot.models.ocr import builtin_manifest

    return {"ocr": builtin_manifest, "graphcut": _graphcut_manifest}




Model = Predictor | InteractiveSegmenter
Factory = Callable[[ModelManifest, "int | None"], Model]


def _ocr(m: ModelManifest, threads: int | None) -> Model:
    from labelpilot.models.ocr import OcrModel

    return OcrModel(m, threads=threads)


def _detect(m: ModelManifest, threads: int | None) -> Model:
    from labelpilot.models.detect import DetectorModel

    return DetectorModel(m, threads=threads)


def _graphcut(m: ModelManifest, threads: int | None) -> Model:
    from labelpilot.models.graphcut import GraphCutSegmenter

    return GraphCutSegmenter()


def _sam(m: ModelManifest, threads: int | None) -> Model:
    from labelpilot.models.sam import SamSegmenter

    return SamSegmenter(m, threads=threads)


def _semantic(m: ModelManifest, threads: int | None) -> Model:
    from labelpilot.models.semantic import SemanticSegmenter

    return SemanticSegmenter(m, threads=threads)


# kind -> (plug-in factory, whether it is an interactive segmenter). A new kind is one row
# here and one module beside this one.
KINDS: dict[str, tuple[Factory, bool]] = {
    "ocr": (_ocr, False),
    "detect": (_detect, False),
    "graphcut": (_graphcut, True),
    "sam": (_sam, True),
    "semantic": (_semantic, True),
}
SEGMENTER_KINDS = tuple(k for k, (_, interactive) in KINDS.items() if interactive)
# the kinds that pre-label whole images (Predictor): what autolabel and the model server run
PREDICTOR_KINDS = ("ocr", "detect")


def segmenter_manifest(name: str | None, models_dir: Path | None) -> ModelManifest:
    """The manifest of interactive segmenter `name` (None: the best available); a model of
    another kind is refused (422 on the API)."""
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
    mine = workspace_manifests(models_dir) if models_dir is not None and models_dir.is_dir() \
        else {}
    for name, make in _builtins().items():
        if name in mine:  # the workspace's copy (with its optimized variants) stands for it
            continue
        try:
            m = make()
        except ModelError as e:
            infos.append(ModelInfo(name, "?", "?", "?", True, f"unavailable: {e.message}", {}))
            continue
        infos.append(_info(m, True))
    infos.extend(_info(m, False) for m in mine.values())
    return infos


def get_manifest(name: str, models_dir: Path | None) -> ModelManifest:
    if models_dir is not None and models_dir.is_dir():
        found = workspace_manifests(models_dir).get(name)
        if found is not None:
            return found
    make = _builtins().get(name)
    if make is None:
        known = [i.name for i in list_models(models_dir)]
        raise ModelNotFoundError(f"no model {name!r}", hint=f"known models: {', '.join(known)}")
    return make()


_LOADED: dict[tuple[Any, ...], Model] = {}
_LOCK = threading.Lock()


def load_model(name: str, models_dir: Path | None, *, threads: int | None = None) -> Model:
    """The plug-in for `name`, loaded once per process (checksums are checked then). A model
    retrained or re-installed under the same name (another version or other files) is
    loaded again."""
    return _load(get_manifest(name, models_dir), threads)


def runtime_device() -> str:
    """Which kind of optimized variant this machine runs: cuda when ONNX Runtime has a GPU
    provider, else cpu."""
    from labelpilot.models.runtime import choose_providers

    return "cpu" if choose_providers("auto")[0] == "CPUExecutionProvider" else "cuda"


def _preferred(manifest: ModelManifest) -> tuple[ModelManifest, str | None]:
    """The manifest with its fastest kept variant for this machine's device in place
    (files not checked), and that variant's name; the manifest itself when it has none."""
    variant = manifest.fastest_variant(runtime_device()) if manifest.variants else None
    return (manifest, None) if variant is None else (manifest.with_variant(variant), variant)


def serving_manifest(manifest: ModelManifest) -> ModelManifest:
    """The manifest a model runs as: its fastest kept variant for this machine's device,
    if it has one whose files are intact; else its own files (a variant that fails its
    checksum is said, not run)."""
    from labelpilot.models.runtime import verify_file

    chosen, variant = _preferred(manifest)
    if variant is None:
        return manifest
    try:
        for role in manifest.variants[variant]["files"]:
            verify_file(*chosen.file(role))
    except ModelError as e:
        warnings.warn(f"model {manifest.name}: its {variant} variant cannot be used "
                      f"({e.message}); running the original files. Run `labelpilot models "
                      f"optimize` again to rebuild it", RuntimeWarning, stacklevel=2)
        return manifest
    return chosen


def _load(manifest: ModelManifest, threads: int | None) -> Model:
    """The plug-in for a manifest already read (as `serving_manifest` picks its files),
    from the process cache or loaded now (a variant's files are checked then, not on
    every call)."""
    def key(m: ModelManifest) -> tuple[Any, ...]:
        files = tuple(sorted((role, f.path, f.sha256) for role, f in m.files.items()))
        return (str(m.root), m.name, m.version, files, threads)

    with _LOCK:
        model = _LOADED.get(key(_preferred(manifest)[0]))
        if model is None:
            manifest = serving_manifest(manifest)  # the original, if the variant is broken
            model = _LOADED.get(key(manifest))
        if model is None:
            entry = KINDS.get(manifest.kind)
            if entry is None:
                raise ModelError(f"model {manifest.name!r} is of kind {manifest.kind!r}, which "
                                 "this version cannot run",
                                 hint=f"known kinds: {', '.join(KINDS)}")
            model = entry[0](manifest, threads)
            _LOADED[key(manifest)] = model
    return model


def open_predictor(name: str, models_dir: Path | None, *, threads: int | None = None
                   ) -> tuple[Predictor, ModelManifest, str | None]:
    """A pre-labeling model loaded anew, outside the process cache (a model server holds
    its own instances: it swaps in new versions and lets the old ones go), with the
    manifest it runs as (its fastest intact variant for this device) and that variant's
    name (None: the model's own files)."""
    manifest = get_manifest(name, models_dir)
    if manifest.kind not in PREDICTOR_KINDS:
        raise PromptError(f"model {name!r} is a {manifest.kind} model, not a pre-labeling "
                          "model", hint="serve a model of kind ocr or detect")
    running = serving_manifest(manifest)
    variant = _preferred(manifest)[1] if running is not manifest else None
    return cast(Predictor, KINDS[running.kind][0](running, threads)), running, variant


def _load_kind(name: str, models_dir: Path | None, kinds: tuple[str, ...], what: str,
               threads: int | None) -> Any:
    manifest = get_manifest(name, models_dir)
    if manifest.kind not in kinds:
        raise PromptError(f"model {name!r} is a {manifest.kind} model, not {what}",
                          hint="pick a model of kind " + ", ".join(kinds))
    return _load(manifest, threads)


def load_predictor(name: str, models_dir: Path | None, *, threads: int | None = None
                   ) -> Predictor:
    """A model that pre-labels whole images (OCR or detector)."""
    return cast(Predictor, _load_kind(name, models_dir, PREDICTOR_KINDS,
                                      "a pre-labeling model", threads))


def load_ocr(name: str, models_dir: Path | None, *, threads: int | None = None) -> OcrModel:
    return cast("OcrModel", _load_kind(name, models_dir, ("ocr",), "an OCR model", threads))


def load_detector(name: str, models_dir: Path | None, *, threads: int | None = None
                  ) -> DetectorModel:
    return cast("DetectorModel", _load_kind(name, models_dir, ("detect",), "a detector",
                                            threads))


def load_segmenter(name: str | None, models_dir: Path | None, *, threads: int | None = None
                   ) -> InteractiveSegmenter:
    """Interactive segmenter `name` (None: the best available, see segmenter_manifest)."""
    return cast(InteractiveSegmenter, _load(segmenter_manifest(name, models_dir), threads))
