"""Cheaper CTC recognizers without retraining: the output layer cut down to the characters
a project uses (`prune_recognizer`), and the input height left free so that the
recognizer can run on smaller lines (`free_height`).

PP-OCR's recognizers end in one matrix product from the sequence features to every
character of their dictionary (18,710 classes for PP-OCRv6, Chinese included) and a
softmax over them, at every time step of every line. A project that reads receipts or
lot codes uses a hundred of them at most: keeping only those columns (with the CTC blank,
and the space when it is used) makes the layer and the softmax about a hundred times
smaller, and the decoder can no longer pick a character the project never writes, which
is where many of a general model's mistakes on such text come from. Characters outside
the kept set can no longer be read at all: `prune_recognizer` says how many there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError


@dataclass
class Pruned:
    classes_before: int
    classes_after: int
    characters: list[str]  # the kept dictionary, in the model's order (blank and space not in it)
    space: bool  # whether the space class is kept (as the last class, PaddleOCR's way)


def output_layer(proto: Any, classes: int) -> tuple[Any, Any, Any | None]:
    """The recognizer's output layer: the MatMul (or Gemm) whose weight initializer has
    `classes` columns and whose product reaches the graph's output through element-wise
    operators only, with its bias initializer (an Add after it) when there is one."""
    inits = {i.name: i for i in proto.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found = []
    for n in proto.graph.node:
        if n.op_type not in ("MatMul", "Gemm") or len(n.input) < 2 or n.input[1] not in inits:
            continue
        weight = inits[n.input[1]]
        if list(weight.dims)[-1:] != [classes] or len(weight.dims) != 2:
            continue
        bias = None
        if n.op_type == "Gemm" and len(n.input) > 2 and n.input[2] in inits:
            bias = inits[n.input[2]]
        for c in consumers.get(n.output[0], []):
            if c.op_type == "Add":
                other = [i for i in c.input if i != n.output[0]]
                if other and other[0] in inits and list(inits[other[0]].dims) == [classes]:
                    bias = inits[other[0]]
        found.append((n, weight, bias))
    if len(found) != 1:
        raise ModelError(f"the recognizer's output layer (a matrix product to its {classes} "
                         f"classes) could not be told apart ({len(found)} candidates)",
                         hint="this recognizer cannot be pruned; its INT8 variants are "
                              "still tried")
    return found[0]


def prune_recognizer(src: Path, dst: Path, table: list[str], used: Iterable[str]) -> Pruned:
    """Write to `dst` the recognizer `src` answering only for the characters in `used`.

    `table` is its class table as the runner decodes it: the CTC blank (""), the
    dictionary, and a trailing space where the model has one. The kept classes keep
    their order; the blank stays first and the space last. The model's own character
    list (its `character` metadata, where it carries one) is rewritten to match."""
    import onnx
    from onnx import numpy_helper

    wanted = set(used)
    keep = [0] + [k for k, ch in enumerate(table) if k and ch in wanted]
    if len(keep) < 2:
        raise ModelError("no character of the labels is in the recognizer's dictionary: "
                         "there is nothing to keep")
    proto = onnx.load(str(src))
    _, weight, bias = output_layer(proto, len(table))
    w = numpy_helper.to_array(weight)
    weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w[:, keep]), weight.name))
    if bias is not None:
        b = numpy_helper.to_array(bias)
        bias.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(b[keep]), bias.name))
    for out in proto.graph.output:  # the class axis is the last
        dims = out.type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value"):
            dims[-1].dim_value = len(keep)
    space = table[-1] == " " and keep[-1] == len(table) - 1
    chars = [table[k] for k in keep[1:len(keep) - (1 if space else 0)]]
    for prop in proto.metadata_props:
        if prop.key == "character":
            prop.value = "\n".join(chars)
    onnx.save(proto, str(dst))
    return Pruned(len(table), len(keep), chars, space)


def free_height(src: Path, dst: Path, *, check: int = 32) -> None:
    """Write to `dst` the recognizer `src` with its input height left free (PP-OCR
    exports it fixed, 48 for v3 and later, though the network pools the height away
    before the sequence layers), and check that it runs at height `check`: fewer rows
    cost proportionally less in every convolution. Whether it reads as well is for the
    gate to measure. A network that cannot run at that height is refused."""
    import onnx

    from labelpilot.models.runtime import OrtSession, sha256_file

    proto = onnx.load(str(src))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f"the recognizer's input has {len(dims)} dimensions, not N, C, H, W")
    dims[2].Clear()
    dims[2].dim_param = "height"
    del proto.graph.value_info[:]  # shape hints inferred for the old height
    onnx.save(proto, str(dst))
    try:
        session = OrtSession(dst, sha256=sha256_file(dst), threads=1)
        (out, *_) = session(np.zeros((1, 3, check, 4 * check), np.float32))
    except Exception as e:  # the graph fixes the height somewhere inside
        dst.unlink(missing_ok=True)
        msg = e.message if isinstance(e, ModelError) else str(e)[:200]
        raise ModelError(f"the recognizer does not run at input height {check}: {msg}",
                         hint="this recognizer keeps its input height") from None
    if out.ndim != 3:
        dst.unlink(missing_ok=True)
        raise ModelError(f"at input height {check} the recognizer answers a {out.shape} "
                         "tensor, not (lines, time steps, classes)")
