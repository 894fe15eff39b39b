"""An ONNX graph as a trainable PyTorch module, and back.

Rather than converting the graph into hand-made layers, the module runs the ONNX nodes
in order with torch operations; every float initializer becomes a parameter. Export
writes the trained parameters back into the same graph, so the ONNX file that serves
the model is the very graph that was trained (parity by construction, checked anyway).
Needs only torch and onnx (no torchvision). Covers the operators of the PP-OCR
recognizers; an unknown operator is refused by name when the module is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from labelpilot.errors import LabelPilotError

Op = Callable[[list[Any], dict[str, Any]], Any]


def _ints(t: Any) -> list[int]:
    return [int(v) for v in (t.tolist() if isinstance(t, torch.Tensor) else t)]


def _same_pads(x: torch.Tensor, kernel: list[int], strides: list[int],
               dilations: list[int], upper: bool) -> list[int]:
    pads: list[int] = []
    for dim, (k, s, d) in enumerate(zip(kernel, strides, dilations, strict=True)):
        size = x.shape[2 + dim]
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        lo = total // 2 if upper else total - total // 2
        pads.append(lo)
        pads.append(total - lo)
    # F.pad wants the last dimension first
    return pads[2:4] + pads[0:2] if len(kernel) == 2 else pads


def _explicit_pads(pads: list[int]) -> list[int]:
    # ONNX: [x1_begin, x2_begin, x1_end, x2_end] -> F.pad: [x2_b, x2_e, x1_b, x1_e]
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


def _conv(i: list[Any], a: dict[str, Any]) -> Any:
    x, w = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    k = list(a.get("kernel_shape", w.shape[2:]))
    s = list(a.get("strides", [1] * len(k)))
    d = list(a.get("dilations", [1] * len(k)))
    auto = a.get("auto_pad", b"NOTSET")
    if auto in (b"SAME_UPPER", b"SAME_LOWER"):
        x = F.pad(x, _same_pads(x, k, s, d, auto == b"SAME_UPPER"))
    elif any(a.get("pads", [])):
        x = F.pad(x, _explicit_pads(list(a["pads"])))
    return F.conv2d(x, w, b, stride=s, dilation=d, groups=int(a.get("group", 1)))


def _pool(kind: str) -> Op:
    def run(i: list[Any], a: dict[str, Any]) -> Any:
        x = i[0]
        k = list(a["kernel_shape"])
        s = list(a.get("strides", [1] * len(k)))
        auto = a.get("auto_pad", b"NOTSET")
        fill = float("-inf") if kind == "max" else 0.0
        if auto in (b"SAME_UPPER", b"SAME_LOWER"):
            x = F.pad(x, _same_pads(x, k, s, [1] * len(k), auto == b"SAME_UPPER"), value=fill)
        elif any(a.get("pads", [])):
            if kind == "avg" and not a.get("count_include_pad", 0):
                raise LabelPilotError("AveragePool with padding that excludes the pad is not "
                                      "supported")
            x = F.pad(x, _explicit_pads(list(a["pads"])), value=fill)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            return F.max_pool2d(x, k, s, ceil_mode=ceil)
        return F.avg_pool2d(x, k, s, ceil_mode=ceil)
    return run


def _softmax(i: list[Any], a: dict[str, Any]) -> Any:
    x = i[0]
    axis = int(a.get("axis", 1)) % x.dim()
    if axis == x.dim() - 1:
        return torch.softmax(x, dim=-1)
    # opset < 13: softmax over the dimensions from `axis` on, flattened
    shape = x.shape
    return torch.softmax(x.reshape(*shape[:axis], -1), dim=-1).reshape(shape)


def _reshape(i: list[Any], a: dict[str, Any]) -> Any:
    x, shape = i[0], _ints(i[1])
    target = [x.shape[k] if v == 0 else v for k, v in enumerate(shape)]
    if target and target[0] == 1 and x.dim() and x.shape[0] > 1:
        target[0] = x.shape[0]  # graphs exported for batch 1, trained on batches
    return x.reshape(target)


def _resize(i: list[Any], a: dict[str, Any]) -> Any:
    x = i[0]
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if len(i) > 3 and i[3] is not None and i[3].numel():
        size = _ints(i[3])[2:]
        kw: dict[str, Any] = {"size": size}
    else:
        scales = [float(v) for v in i[2].tolist()][2:]
        kw = {"scale_factor": scales}
    if mode == "nearest":
        return F.interpolate(x, mode="nearest", **kw)
    return F.interpolate(x, mode="bilinear", align_corners=False, **kw)


def _slice(i: list[Any], a: dict[str, Any]) -> Any:
    x = i[0]
    starts, ends = _ints(i[1]), _ints(i[2])
    axes = _ints(i[3]) if len(i) > 3 and i[3] is not None else list(range(len(starts)))
    steps = _ints(i[4]) if len(i) > 4 and i[4] is not None else [1] * len(starts)
    index: list[Any] = [slice(None)] * x.dim()
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        size = x.shape[ax]
        en = min(en, size) if en >= 0 else en
        index[ax % x.dim()] = slice(st, en, sp)
    return x[tuple(index)]


def _batchnorm(i: list[Any], a: dict[str, Any]) -> Any:
    x, scale, bias, mean, var = i[:5]
    # Running statistics stay as pretrained: fine-tuning with BatchNorm in training mode
    # on small batches wrecked accuracy (see DESIGN.md); the affine part still learns.
    return F.batch_norm(x, mean.detach(), var.detach(), scale, bias, training=False,
                        eps=float(a.get("epsilon", 1e-5)))


OPS: dict[str, Op] = {
    "Conv": _conv,
    "Add": lambda i, a: i[0] + i[1],
    "Sub": lambda i, a: i[0] - i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Pow": lambda i, a: torch.pow(i[0], i[1]),
    "Sqrt": lambda i, a: torch.sqrt(i[0]),
    "Erf": lambda i, a: torch.erf(i[0]),
    "Identity": lambda i, a: i[0],
    "Relu": lambda i, a: F.relu(i[0]),
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "HardSigmoid": lambda i, a: torch.clamp(float(a.get("alpha", 0.2)) * i[0]
                                            + float(a.get("beta", 0.5)), 0, 1),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "Concat": lambda i, a: torch.cat(i, dim=int(a["axis"])),
    "ReduceMean": lambda i, a: torch.mean(i[0], dim=list(a["axes"]),
                                          keepdim=bool(a.get("keepdims", 1))),
    "BatchNormalization": _batchnorm,
    "Shape": lambda i, a: torch.tensor(list(i[0].shape), dtype=torch.int64),
    "Slice": _slice,
    "Squeeze": lambda i, a: i[0].squeeze(tuple(a["axes"])) if "axes" in a else i[0].squeeze(),
    "Unsqueeze": lambda i, a: _unsqueeze(i[0], list(a["axes"])),
    "Reshape": _reshape,
    "Transpose": lambda i, a: i[0].permute(*a["perm"]),
    "MatMul": lambda i, a: torch.matmul(i[0], i[1]),
    "Softmax": _softmax,
    "Resize": _resize,
}


def _unsqueeze(x: Any, axes: list[int]) -> Any:
    for ax in sorted(axes):
        x = x.unsqueeze(ax)
    return x


class OnnxModule(nn.Module):
    """Runs an ONNX graph with torch. `forward(x)` returns the graph's output, or with
    `logits=True` the input of a final Softmax (what CTC training wants)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        self.proto = model
        g = model.graph
        unknown = sorted({n.op_type for n in g.node} - set(OPS))
        if unknown:
            raise LabelPilotError(f"the ONNX graph uses operators this trainer does not "
                                  f"support: {', '.join(unknown)}")
        self.nodes = [(n.op_type, list(n.input), list(n.output),
                       {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
                      for n in g.node]
        self.input_name = g.input[0].name
        self.output_name = g.output[0].name
        self.names: dict[str, str] = {}
        self.consts: dict[str, torch.Tensor] = {}
        self.params = nn.ParameterDict()
        # every float tensor of more than one value is a parameter, and every convolution's
        # weight and bias (a one-channel layer's bias is a single value)
        conv_inputs = {n for op in g.node if op.op_type == "Conv" for n in op.input[1:3]}
        for init in g.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype in (np.float32, np.float64) and (arr.size > 1
                                                          or init.name in conv_inputs):
                key = f"p{len(self.names)}"
                self.names[init.name] = key
                self.params[key] = nn.Parameter(torch.from_numpy(arr.astype(np.float32).copy()))
            else:
                self.consts[init.name] = torch.from_numpy(np.array(arr))
        # what each node is the last to read: dropped from the forward pass's environment
        # right after it, so that a no-grad pass holds only the tensors still to be read
        # (and a training pass only those autograd keeps), not every intermediate
        produced = {o for _, _, outs, _ in self.nodes for o in outs}
        last_reader: dict[str, int] = {}
        for k, (_, inputs, _, _) in enumerate(self.nodes):
            for n in inputs:
                if n in produced:
                    last_reader[n] = k
        self.drop_after: list[list[str]] = [[] for _ in self.nodes]
        for n, k in last_reader.items():
            if n != self.output_name:
                self.drop_after[k].append(n)
        last = self.nodes[-1]
        self.final_softmax = last[0] == "Softmax" and last[2][0] == self.output_name

    def param(self, onnx_name: str) -> nn.Parameter:
        return self.params[self.names[onnx_name]]

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        env: dict[str, Any] = {self.input_name: x}
        for name, key in self.names.items():
            env[name] = self.params[key]
        env.update(self.consts)
        for k, (op, inputs, outputs, attrs) in enumerate(self.nodes):
            if logits and self.final_softmax and k == len(self.nodes) - 1:
                return env[inputs[0]]  # type: ignore[no-any-return]
            args = [env[n] if n else None for n in inputs]
            env[outputs[0]] = OPS[op](args, attrs)
            del args
            for n in self.drop_after[k]:
                del env[n]
        return env[self.output_name]  # type: ignore[no-any-return]

    def to_onnx(self) -> onnx.ModelProto:
        """The original graph with this module's current parameters as its weights."""
        out = onnx.ModelProto()
        out.CopyFrom(self.proto)
        for init in out.graph.initializer:
            key = self.names.get(init.name)
            if key is not None:
                arr = self.params[key].detach().cpu().numpy().astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(arr, init.name))
        # the output dimension follows the (possibly extended) character set
        for o in out.graph.output:
            dims = o.type.tensor_type.shape.dim
            if dims and dims[-1].HasField("dim_value"):
                head = self._head()
                if head is not None:
                    dims[-1].dim_value = int(self.param(head[0]).shape[-1])
        return out

    def save_checked(self, path: Path, x: torch.Tensor, tolerance: float = 1e-3) -> float:
        """Write `to_onnx()` to `path` and run `x` through both it (ONNX Runtime) and this
        module; the largest difference, or LabelPilotError past `tolerance`."""
        import onnxruntime as ort

        onnx.save(self.to_onnx(), str(path))
        self.eval()
        with torch.no_grad():
            want = self(x).numpy()
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]
                                   ).run(None, {self.input_name: x.numpy()})[0]
        parity = float(np.abs(got - want).max())
        if parity > tolerance:
            raise LabelPilotError(f"the exported ONNX model differs from the trained one "
                                  f"(max difference {parity:.2e}); not registered")
        return parity

    def _head(self) -> tuple[str, str] | None:
        """(weight, bias) initializer names of the final MatMul + Add before the softmax."""
        matmul = next((n for n in reversed(self.nodes) if n[0] == "MatMul"
                       and n[1][1] in self.names), None)
        add = next((n for n in reversed(self.nodes) if n[0] == "Add"
                    and n[1][1] in self.names), None)
        if matmul is None or add is None:
            return None
        return matmul[1][1], add[1][1]

    def extend_classes(self, extra: int) -> None:
        """Add `extra` output classes (new characters), initialised from the existing
        rows' mean and a small noise, with a bias below the others so they start rare."""
        head = self._head()
        if head is None:
            raise LabelPilotError("cannot find the recognizer's output layer to extend")
        w, b = self.param(head[0]), self.param(head[1])
        with torch.no_grad():
            new_w = w.mean(dim=1, keepdim=True).repeat(1, extra)
            new_w += torch.randn_like(new_w) * w.std() * 0.1
            new_b = torch.full((extra,), float(b.min()), dtype=b.dtype)
        self.params[self.names[head[0]]] = nn.Parameter(torch.cat([w.detach(), new_w], dim=1))
        self.params[self.names[head[1]]] = nn.Parameter(torch.cat([b.detach(), new_b]))
