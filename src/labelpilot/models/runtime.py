"""ONNX Runtime sessions: providers chosen from what is installed, threads, checksums.

`onnxruntime` is imported lazily: importing LabelPilot never needs it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError
from labelpilot.models.batching import Batching
from labelpilot.settings import Settings

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, sha256: str | None) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ModelError(
                f"model file {path} has SHA-256 {got}, but its manifest expects {sha256}",
                hint="the file is corrupt or was replaced: download it again")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("onnxruntime is not installed",
                         hint="pip install onnxruntime (or 'labelpilot[gpu]' on a GPU)") from None
    return onnxruntime


def choose_providers(requested: str = "auto") -> list[str]:
    """Execution providers in order of preference.

    `auto` takes TensorRT/CUDA when they are installed, else CPU. `cuda`/`tensorrt` ask
    for one explicitly: if it is missing the session falls back to the CPU, with a warning.
    """
    ort = _ort()
    available = set(ort.get_available_providers())
    if requested == "cpu":
        return ["CPUExecutionProvider"]
    if requested == "auto":
        return [p for p in _GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(
        requested)
    if wanted is None:
        raise ModelError(f"unknown device {requested!r}; use auto, cpu, cuda or tensorrt")
    if wanted not in available:
        warnings.warn(f"{wanted} is not available in this onnxruntime build; running on the "
                      "CPU instead", RuntimeWarning, stacklevel=2)
        return ["CPUExecutionProvider"]
    chain = [wanted] + (["CUDAExecutionProvider"] if wanted.startswith("Tensorrt") else [])
    return [*chain, "CPUExecutionProvider"]


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime session options as LabelPilot runs every session: `threads` intra-op
    threads (None: `LABELPILOT_THREADS_PER_MODEL`, else every core), one inter-op thread,
    quiet, and spinning as the settings say."""
    settings = Settings()
    opts = _ort().SessionOptions()
    opts.intra_op_num_threads = threads or settings.threads_per_model or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning",
                                  "1" if settings.ort_spinning else "0")
    return opts


class OrtSession:
    """One ONNX model: checksum checked, then loaded; `__call__(inputs) -> outputs`."""

    def __init__(self, path: Path, *, sha256: str | None = None, threads: int | None = None,
                 device: str = "auto") -> None:
        verify_file(path, sha256)
        ort = _ort()
        opts = session_options(threads)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._opts, self._providers = opts, choose_providers(device)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts,
                                                providers=self._providers)
        except Exception as e:
            raise ModelError(f"{path} is not a loadable ONNX model ({type(e).__name__}: "
                             f"{str(e)[:200]})", hint="download the file again") from None
        self.path = path
        self.sha256 = sha256  # as checked (None: not given)
        self.batching = Batching(1, "one image at a time (no batch asked for)")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def enable_batching(self) -> Batching:
        """Let this session run batches: as it is where its input's first dimension is
        free, else with the batch axis `batching.with_batch_axis` gives it, once a batch
        is checked to give each image what it gets alone. Where that fails the session
        stays as it was and `batching` says why."""
        from labelpilot.models.batching import check_parity, with_batch_axis

        first = self.session.get_inputs()[0].shape
        if first and not isinstance(first[0], int):
            self.batching = Batching(None, "the graph takes any batch")
            return self.batching
        try:
            graph, rewritten = with_batch_axis(self.path)
            batched = _ort().InferenceSession(graph, sess_options=self._opts,
                                              providers=self._providers)
            worst = check_parity(self.session, batched, list(first))
        except ModelError as e:
            self.batching = Batching(1, f"one image at a time: {e.message}")
            return self.batching
        except Exception as e:  # ONNX Runtime refusing the rewritten graph
            self.batching = Batching(1, f"one image at a time: the graph refuses a batch "
                                        f"({type(e).__name__}: {str(e)[:160]})")
            return self.batching
        self.session = batched
        self.batching = Batching(None, f"batch axis added ({rewritten} reshapes follow it; "
                                       f"a batch matches single runs within {worst:.1e})")
        return self.batching

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, *inputs: np.ndarray) -> Sequence[np.ndarray]:
        feed = dict(zip(self.input_names, inputs, strict=True))
        return self.session.run(None, feed)  # type: ignore[no-any-return]
