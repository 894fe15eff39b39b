"""Static INT8 quantization of an ONNX model with ONNX Runtime's tools (QDQ format: each
quantized operator between QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime fuses
into integer kernels), calibrated on the caller's inputs.

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
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError

METHODS = ("minmax", "entropy", "percentile")
ARITHMETIC = ["Conv", "MatMul", "Gemm"]
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
    calibration method used: the histogram methods (entropy, percentile) cannot take a
    graph whose tensors change size from image to image (NMS inside the graph, as
    PP-PicoDet exports); MinMax is used there instead."""
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

    methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
               "percentile": q.CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="lp-quant-") as tmp:
        # shape inference and graph clean-up first, as ONNX Runtime's guide advises
        prepared = Path(tmp) / "prepared.onnx"
        try:
            q.quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
            proto = onnx.load(str(prepared))
        except Exception:  # some graphs defeat symbolic shape inference: go without it
            proto = onnx.load(str(src))
        proto = at_least_opset(proto, 13)
        for i, node in enumerate(proto.graph.node):  # exclusion goes by node name
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        onnx.save(proto, str(prepared))
        last = prediction_layers(proto)
        body = _before(proto, last)
        exclude = [n.name for n in proto.graph.node if n.name not in body
                   or (careful and (n.name in last or n.op_type not in ARITHMETIC))]
        for used in dict.fromkeys([method, "minmax"]):
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print
                    q.quantize_static(
                        str(prepared), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                        activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                        nodes_to_exclude=list(exclude), calibrate_method=methods[used],
                        extra_options={"CalibMovingAverage": used == "minmax",
                                       "CalibPercentile": 99.99} if used != "entropy" else {})
                break
            except ValueError as e:  # tensors of varying size: histograms cannot be made
                if used == "minmax":
                    raise ModelError(f"ONNX Runtime could not calibrate this graph: {e}") from None
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
