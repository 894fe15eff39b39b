"""The models a server serves: loaded, warmed up, and kept current.

A watcher thread looks at the workspace's models every `watch_s` seconds. A model whose
manifest now names another version, other files or a new fastest variant is loaded and
warmed up beside the running one, then swapped in (`ModelWorker.swap`): requests in flight
finish on the old version, later ones run on the new, none fails. A model registered
after the start is served too when the server serves every model (no `--models`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError, ModelNotFoundError, PromptError
from labelpilot.models.batching import Batching
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.registry import (
    PREDICTOR_KINDS,
    get_manifest,
    list_models,
    open_predictor,
)
from labelpilot.serving.metrics import ServingMetrics
from labelpilot.serving.workers import Loaded, ModelWorker, ServingConfig

log = logging.getLogger("labelpilot.serving")

WARMUP_SIZE = (480, 640)  # an image of this size is run once before a version is served


def disk_key(manifest: ModelManifest) -> tuple[Any, ...]:
    """What a model is on disk: its version, files and kept variants. A change is a new
    version to swap in."""
    files = tuple(sorted((r, f.path, f.sha256) for r, f in manifest.files.items()))
    variants = tuple(sorted((k, str(v.get("files")), str(v.get("speedup")))
                            for k, v in manifest.variants.items()))
    return (manifest.version, files, variants)


def _warm_up(model: Any) -> float:
    """Run the model once (sessions allocate on first use); ms per image of a second run."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*WARMUP_SIZE, 3), dtype=np.uint8)
    model.predict_batch([image])
    start = time.perf_counter()
    model.predict_batch([image])
    return (time.perf_counter() - start) * 1000


class ModelPool:
    def __init__(self, models_dir: Path, names: list[str] | None, config: ServingConfig,
                 metrics: ServingMetrics) -> None:
        self.models_dir = models_dir
        self.fixed = names  # None: every pre-labeling model, new ones included
        self.config = config
        self.metrics = metrics
        self.workers: dict[str, ModelWorker] = {}
        self.failed: dict[str, str] = {}  # name -> why it could not be (re)loaded
        self.ready = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # ---- loading ------------------------------------------------------------------------
    def wanted(self) -> list[str]:
        if self.fixed is not None:
            return list(self.fixed)
        return [i.name for i in list_models(self.models_dir)
                if i.kind in PREDICTOR_KINDS and i.version != "?"]

    def check_names(self) -> None:
        """Refuse unknown or unservable names given by the user, before anything loads."""
        for name in self.fixed or []:
            m = get_manifest(name, self.models_dir)
            if m.kind not in PREDICTOR_KINDS:
                raise PromptError(f"model {name!r} is a {m.kind} model; the model server "
                                  "serves pre-labeling models",
                                  hint="pick models of kind " + ", ".join(PREDICTOR_KINDS))

    def load(self, name: str) -> Loaded:
        # the manifest first: a change made while loading is then seen at the next check
        manifest = get_manifest(name, self.models_dir)
        model, _running, variant = open_predictor(name, self.models_dir,
                                                 threads=self.config.threads)
        batching = Batching(1, "one image at a time (batching off)")
        if self.config.batching:
            enable = getattr(model, "enable_batching", None)
            batching = enable() if enable is not None else Batching(
                1, "one image at a time: this kind runs images one by one")
        ms = _warm_up(model)
        return Loaded(name=name, kind=manifest.kind, version=manifest.version, variant=variant,
                      key=disk_key(manifest), model=model, batching=batching,
                      labels=tuple(model.spec.labels), metrics=dict(manifest.metrics),
                      ms_per_image=ms)

    def start(self) -> None:
        """Load every wanted model (those that fail are said in `failed`), then watch."""
        for name in self.wanted():
            self._load_new(name)
        self.ready = True
        if self.config.watch_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="serve-watch",
                                             daemon=True)
            self._watcher.start()

    def _load_new(self, name: str) -> None:
        try:
            loaded = self.load(name)
        except LabelPilotError as e:
            self.failed[name] = e.message
            log.error("model %s not served: %s", name, e.message)
            return
        with self._lock:
            self.workers[name] = ModelWorker(loaded, self.config, self.metrics)
            self.failed.pop(name, None)
        log.info("serving %s %s (%s; %s)", name, loaded.version, loaded.variant or "fp32",
                 loaded.batching.note)

    # ---- keeping current ----------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Swap in the models changed on disk and load new ones; the names swapped."""
        swapped = []
        for name in self.wanted():
            worker = self.workers.get(name)
            if worker is None:
                self._load_new(name)
                continue
            try:
                key = disk_key(get_manifest(name, self.models_dir))
            except (ModelNotFoundError, LabelPilotError, OSError, ValueError):
                continue  # removed or being rewritten: keep serving what is loaded
            if key == worker.current.key:
                continue
            try:
                loaded = self.load(name)
            except (LabelPilotError, OSError, ValueError) as e:
                msg = e.message if isinstance(e, LabelPilotError) else str(e)
                self.failed[name] = f"a new version could not be loaded ({msg}); still " \
                                    f"serving {worker.current.version}"
                continue
            worker.swap(loaded)
            self.failed.pop(name, None)
            swapped.append(name)
            log.info("model %s: now serving %s (%s)", name, loaded.version,
                     loaded.variant or "fp32")
        return swapped

    def _watch(self) -> None:
        while not self._stop.wait(self.config.watch_s):
            try:
                self.refresh()
            except Exception:
                log.exception("checking the models for new versions failed")

    def worker(self, name: str) -> ModelWorker:
        worker = self.workers.get(name)
        if worker is None:
            why = self.failed.get(name)
            if why is not None:
                raise ModelNotFoundError(f"model {name!r} is not being served: {why}")
            raise ModelNotFoundError(f"no served model {name!r}",
                                     hint="served: " + (", ".join(sorted(self.workers)) or
                                                        "none"))
        return worker

    def close(self, timeout: float = 30.0) -> None:
        """Stop watching; finish every accepted request; stop the workers."""
        self.ready = False
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
        for w in list(self.workers.values()):
            w.close(timeout)
