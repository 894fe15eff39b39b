"""Image embeddings from a model's own backbone: the ONNX graph cut at its deepest,
coarsest feature map and pooled to one unit-length vector per image. Used by diversity
sampling (active learning), so that images a model sees alike are not all labeled.

The feature map is found by running the graph once on a sample input with every 4-D
intermediate tensor exposed: the one with the most channels among those at the coarsest
stride (at least 16) before any head, taken first in the graph's order. The cut graph
runs only the nodes that map needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError
from labelpilot.extras import require_onnx
from labelpilot.models.runtime import session_options, sha256_file

OUTPUT = "labelpilot_embedding"


def _feature_tensor(onnx: object, model: object, sample: np.ndarray) -> tuple[str, int]:
    """The name and channel count of the graph's backbone feature map (see the module)."""
    import onnxruntime as ort

    helper = onnx.helper  # type: ignore[attr-defined]
    graph = model.graph  # type: ignore[attr-defined]
    known = {o.name for o in graph.output}
    names = [o for node in graph.node for o in node.output if o and o not in known]
    probe = onnx.ModelProto()  # type: ignore[attr-defined]
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: sample})
    except Exception as e:  # ORT's errors have no common base class
        raise ModelError(f"the model's feature maps could not be read: {e}") from None
    height = sample.shape[2]
    best: tuple[int, int, str] | None = None
    for info, value in zip(sess.get_outputs(), outs, strict=True):
        if info.name not in names or not isinstance(value, np.ndarray) or value.ndim != 4:
            continue
        if value.shape[0] != 1 or value.shape[2] < 1 or value.dtype != np.float32:
            continue
        stride = height // value.shape[2]
        if not 16 <= stride <= 64 or min(value.shape[2:]) < 2:
            continue  # finer maps, or attention weights pooled to a point
        key = (stride, value.shape[1])
        if best is None or key > best[:2]:
            best = (stride, value.shape[1], info.name)
    if best is None:
        raise ModelError("the model has no feature map at a stride of 16 or more to take "
                         "image embeddings from")
    return best[2], best[1]


def _reads(node: Any) -> list[str]:
    """The names a node reads, those its subgraphs read from outside included."""
    names = [i for i in node.input if i]
    for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            names += [i for n in sub.node for i in n.input if i]
    return names


def cut_at(onnx: Any, model: Any, tensor: str) -> Any:
    """The part of `model` that computes `tensor` from the first input: the nodes it
    depends on, in their order, and their weights. (onnx's Extractor needs every tensor's
    shape inferred first, which fails on graphs exported from PyTorch, such as a
    fine-tuned detector's.)"""
    g = model.graph
    producer = {out: k for k, node in enumerate(g.node) for out in node.output}
    keep: set[int] = set()
    used: set[str] = set()
    stack = [tensor]
    while stack:
        k = producer.get(stack.pop())
        if k is None or k in keep:
            continue
        keep.add(k)
        reads = _reads(g.node[k])
        used.update(reads)
        stack.extend(reads)
    graph = onnx.helper.make_graph(
        [g.node[k] for k in sorted(keep)], g.name or "features", [g.input[0]], [],
        initializer=[t for t in g.initializer if t.name in used])
    return onnx.helper.make_model(graph, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)


class FeatureExtractor:
    """`embed(image) -> unit vector` from the model file at `path` (its input made by
    `prepare`, as the model itself prepares images). `key` names the file's content and
    the tensor, so vectors of different backbones are never compared and those of one
    backbone are shared by every model that holds it (an OCR model whose recognizer was
    fine-tuned keeps its detector's embeddings)."""

    def __init__(self, path: Path, *,
                 prepare: Callable[[np.ndarray], np.ndarray], sample: np.ndarray,
                 threads: int | None = 1) -> None:
        onnx = require_onnx("for image embeddings (diversity sampling)")
        model = onnx.load(str(path))
        tensor, channels = _feature_tensor(onnx, model, sample)
        cut = cut_at(onnx, model, tensor)
        cut.graph.node.append(onnx.helper.make_node(
            "GlobalAveragePool", [tensor], [OUTPUT + "_pooled"]))
        cut.graph.node.append(onnx.helper.make_node(
            "Flatten", [OUTPUT + "_pooled"], [OUTPUT], axis=1))
        del cut.graph.output[:]
        cut.graph.output.append(onnx.helper.make_tensor_value_info(
            OUTPUT, onnx.TensorProto.FLOAT, [None, channels]))
        import onnxruntime as ort

        opts = session_options(threads or 1)
        self.session = ort.InferenceSession(cut.SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.prepare = prepare
        self.tensor = tensor
        self.dim = channels
        self.key = f"onnx:{sha256_file(path)[:16]}#{tensor}"

    def embed(self, image: np.ndarray) -> np.ndarray:
        x = self.prepare(image)
        v = self.session.run([OUTPUT], {self.input_name: x})[0].reshape(-1).astype(np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v


class EncoderFeatures:
    """`embed(image) -> unit vector` from a SAM-family segmenter's own image encoder: its
    image embedding ([1, C, g, g], the image resized into the top-left of a square input)
    averaged over the grid cells the image covers, the padding left out. `image` is BGR,
    as the executors read it; the encoder takes RGB."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        encoder = segmenter.encoder  # an OrtSession: its file's checksum checked at load
        sha = encoder.sha256 or sha256_file(encoder.path)
        self.key = f"onnx:{sha[:16]}#image_embeddings"

    def embed(self, image: np.ndarray) -> np.ndarray:
        emb = self.segmenter.embed(np.ascontiguousarray(image[..., ::-1]))
        f = emb.features[0]
        cells = f.shape[-1] / self.segmenter.input_size  # grid cells per input pixel
        w, h = emb.size
        gh = max(1, min(f.shape[-2], int(np.ceil(h * emb.scale * cells))))
        gw = max(1, min(f.shape[-1], int(np.ceil(w * emb.scale * cells))))
        v = f[:, :gh, :gw].mean(axis=(1, 2)).astype(np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v
