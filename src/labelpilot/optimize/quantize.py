"""Static INT8 quantization of an ONNX model with ONNX Runtime's tools (QDQ format: each
quantized operator between QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime fuses
into integer kernels), calibrated on the caller's inputs one at a time (MinMax, Entropy or
Percentile; inputs of varying size, as OCR pages and text lines are, always MinMax:
histograms at page size cost minutes).

Only the network's body is quantized: the nodes that lead to its prediction layers
(the last convolutions, see `prediction_layers`). By default it is quantized through and
through (convolutions, matrix products and the element-wise operators, pooling, resizes
and concatenations between them, so that tensors stay in INT8 from one convolution to the
next instead of paying a quantize/dequantize pair around each). Everything else stays in
float: the decoding, the concatenations that put box coordinates in the hundreds beside
scores under 1 in one tensor, NMS, the rescaling by a `scale_factor` input, where one
scale per tensor would cost accuracy. `careful=True` quantizes the convolutions alone
and leaves the prediction layers in float too: slower, closer to the original; the gate
tries it when the first way loses too much. Weights get one scale per output channel.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError

METHODS = ("minmax", "entropy", "percentile")
ARITHMETIC = ["Conv", "ConvTranspose", "MatMul", "Gemm"]
QUANTIZED_OPS = [*ARITHMETIC, "Mul", "Add", "Sigmoid", "Concat", "MaxPool", "Resize",
                 "AveragePool", "GlobalAveragePool", "Relu", "Clip", "LeakyRelu"]


def _quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError:  # pragma: no cover - onnxruntime is a base dependency
        raise ModelError("onnxruntime's quantization tools are not installed",
                         hint="pip install onnxruntime onnx") from None
    return quantization


def quantize_int8(src: Path, dst: Path, inputs: Iterable[dict[str, np.ndarray]], *,
                  method: str = "percentile", careful: bool = False
                  ) -> tuple[list[str], str]:
    """Write the INT8 (QDQ) version of `src` to `dst`, calibrated on `inputs` (feeds of
    the model's input names). Returns the arithmetic nodes left in float and the
    calibration method used (MinMax when a histogram method fails on the graph).

    The body is cut out of the graph (its inputs to the prediction layers' outputs),
    calibrated and quantized alone, and the float tail (decoding, NMS) put back after
    it: so the calibrators only see the body's tensors, never the tail's, whose sizes
    can change from image to image (NMS inside the graph, as PP-PicoDet exports)."""
    import onnx

    q = _quantization()
    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r}", hint=f"one of: {', '.join(METHODS)}")
    feeds = list(inputs)
    if not feeds:
        raise ModelError("no calibration inputs")

    class Reader(q.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

        def rewind(self) -> None:
            self.it = iter(feeds)

        def __len__(self) -> int:
            return len(feeds)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.it = iter(feeds[start_index:end_index])

    # inputs that vary in size (OCR pages, text lines) are calibrated with MinMax:
    # histograms of every tensor at page size cost minutes an input
    varying = any(len({f[k].shape for f in feeds if k in f}) > 1 for k in feeds[0])
    if varying:
        method = "minmax"
    methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
               "percentile": q.CalibrationMethod.Percentile}
    def options(used: str) -> dict[str, Any]:
        # one input at a time, its ranges or histograms merged into the others' (ONNX
        # Runtime's strided calibration): memory stays that of one input's tensors,
        # however many there are (all of them at once took 16 GB on 256 text lines). No
        # moving average: merged chunk by chunk it would keep the first input's ranges.
        strided: dict[str, Any] = {"CalibStridedMinMax": 1}
        return strided if used != "percentile" else {**strided, "CalibPercentile": 99.99}

    with tempfile.TemporaryDirectory(prefix="lp-quant-") as tmp:
        # shape inference and graph clean-up first, as ONNX Runtime's guide advises
        prepared = Path(tmp) / "prepared.onnx"
        # in a child process working in the temporary folder: where ONNX Runtime's symbolic
        # shape inference cannot finish (graphs with NMS inside), it leaves
        # sym_shape_infer_temp.onnx in the working directory before giving up
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from onnxruntime.quantization import "
             "quant_pre_process as p; p(sys.argv[1], sys.argv[2], skip_symbolic_shape=False)",
             str(src.resolve()), str(prepared)], cwd=tmp, capture_output=True, check=False)
        # a graph that defeats symbolic shape inference is quantized without it
        proto = onnx.load(str(prepared if done.returncode == 0 else src))
        proto = at_least_opset(proto, 13)
        for i, node in enumerate(proto.graph.node):  # exclusion goes by node name
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        last = prediction_layers(proto)
        body = _before(proto, last)
        exclude = [n.name for n in proto.graph.node if n.name in body
                   and careful and (n.name in last or n.op_type not in ARITHMETIC)]
        onnx.save(_body_of(proto, body, last), str(prepared))
        reads = _inputs_of(proto, body)
        feeds[:] = [{k: v for k, v in f.items() if k in reads} for f in feeds]
        quantized = Path(tmp) / "body.int8.onnx"
        for used in dict.fromkeys([method, "minmax"]):
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print
                    q.quantize_static(
                        str(prepared), str(quantized), Reader(), quant_format=q.QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                        activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                        nodes_to_exclude=list(exclude), calibrate_method=methods[used],
                        extra_options=options(used))
                break
            except ValueError as e:  # tensors of varying size: histograms cannot be made
                if used == "minmax":
                    raise ModelError(f"ONNX Runtime could not calibrate this graph: {e}") from None
        onnx.save(_with_tail(onnx.load(str(quantized)), proto, body), str(dst))
    return (last if careful else []), used


def at_least_opset(proto: Any, version: int) -> Any:
    """The graph at ONNX opset `version` or later: per-channel DequantizeLinear (its
    `axis`) needs 13, and many published detectors are exported at 11 or 12."""
    import onnx
    from onnx import version_converter

    current = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if current >= version:
        return proto
    try:
        converted = version_converter.convert_version(proto, version)
        if not converted.metadata_props:  # e.g. that ONNX Runtime's pre-processing ran
            converted.metadata_props.extend(proto.metadata_props)
        onnx.checker.check_model(converted)
    except Exception as e:  # the converter lacks an adapter for some operator
        raise ModelError(f"the model's graph (ONNX opset {current}) cannot be brought to "
                         f"opset {version}, which per-channel INT8 needs: {e}",
                         hint="export the model at opset 13 or later") from None
    return converted


def prediction_layers(proto: Any) -> list[str]:
    """The nodes of the arithmetic kinds whose outputs reach a graph output without
    passing another of them: the model's last (prediction) layers, the most sensitive to
    quantization."""
    g = proto.graph
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    last = []
    for n in g.node:
        if n.op_type not in ARITHMETIC:
            continue
        # walk forward through non-arithmetic nodes: an output reached first means last
        todo, seen, final = list(n.output), set(), False
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in outputs:
                final = True
                break
            for c in consumers.get(t, []):
                if c.op_type not in ARITHMETIC:
                    todo.extend(c.output)
        if final:
            last.append(n.name)
    return last


def _inputs_of(proto: Any, body: set[str]) -> set[str]:
    """The graph inputs the `body` nodes read."""
    graph_inputs = {i.name for i in proto.graph.input}
    return {i for n in proto.graph.node if n.name in body for i in n.input if i in graph_inputs}


def _body_of(proto: Any, body: set[str], last: list[str]) -> Any:
    """The graph cut down to its body: the inputs it reads, its nodes, the initializers
    they use, the prediction layers' outputs as the graph's outputs."""
    import onnx
    from onnx import helper

    nodes = [n for n in proto.graph.node if n.name in body]
    used = {i for n in nodes for i in n.input}
    named = {n.name: n for n in proto.graph.node}
    outputs = [o for name in last for o in named[name].output]
    graph = helper.make_graph(
        nodes, f"{proto.graph.name}-body",
        [i for i in proto.graph.input if i.name in _inputs_of(proto, body)],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        [i for i in proto.graph.initializer if i.name in used])
    out = helper.make_model(graph, opset_imports=list(proto.opset_import))
    out.ir_version = proto.ir_version
    out.metadata_props.extend(proto.metadata_props)
    return out


def _with_tail(quantized: Any, proto: Any, body: set[str]) -> Any:
    """The quantized body with the original graph's float tail put back after it: the
    original inputs and outputs, the tail's nodes and the initializers they use."""
    from onnx import helper

    tail = [n for n in proto.graph.node if n.name not in body]
    have = {i.name for i in quantized.graph.initializer}
    used = {i for n in tail for i in n.input}
    graph = helper.make_graph(
        [*quantized.graph.node, *tail], proto.graph.name, list(proto.graph.input),
        list(proto.graph.output),
        [*quantized.graph.initializer,
         *(i for i in proto.graph.initializer if i.name in used and i.name not in have)])
    domains = {(o.domain, o.version) for o in quantized.opset_import}
    domains |= {(o.domain, o.version) for o in proto.opset_import
                if o.domain not in {d for d, _ in domains}}
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in domains])
    out.ir_version = max(proto.ir_version, quantized.ir_version)
    # what the model carries for its runner (a recognizer's character list)
    out.metadata_props.extend(proto.metadata_props)
    return out


def _before(proto: Any, last: list[str]) -> set[str]:
    """The nodes the prediction layers `last` are computed from, and those layers: the
    network's body."""
    made_by = {o: n for n in proto.graph.node for o in n.output}
    named = {n.name: n for n in proto.graph.node}
    out: set[str] = set()
    todo = [named[name] for name in last]
    while todo:
        n = todo.pop()
        if n.name in out:
            continue
        out.add(n.name)
        todo.extend(made_by[i] for i in n.input if i in made_by)
    return out
