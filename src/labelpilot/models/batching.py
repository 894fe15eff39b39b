"""A batch axis for ONNX graphs exported for one image at a time.

Most released detectors (YOLOX, the YOLO family exported with a fixed shape) take
`[1, 3, H, W]` and give `[1, N, C]`: ONNX Runtime refuses a batch of 8. A serving process
gains from running the images of several requests as one batch, so the graph is rewritten
in memory: the input's and outputs' first dimension made free, and every Reshape whose
constant target starts with that fixed 1 told to copy the batch from its input instead
(`0` in ONNX's Reshape, or -1 where the target already copies a dimension). Nothing else
in the graph changes. The rewritten graph is then **checked**: a batch of different random
images must give, image for image, what the original graph gives for each alone; a graph
that fails (a Reshape computed at run time, an output without a batch axis) is served one
image at a time, with the reason said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import ModelError
from labelpilot.extras import require_onnx

# largest difference between a batched and a single run that still counts as the same
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 3


@dataclass(frozen=True)
class Batching:
    """What a session can take: `max_batch` None for any batch, 1 for one image at a
    time; `note` says why (or how it was made batchable)."""

    max_batch: int | None
    note: str


def with_batch_axis(path: Path) -> tuple[bytes, int]:
    """The graph at `path` with a free batch axis, serialized, and how many Reshape
    targets were rewritten. ModelError where the graph has no fixed batch of 1 to free."""
    onnx = require_onnx("to give a model a batch axis")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name for i in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in inits]
    if len(graph_inputs) != 1:
        raise ModelError(f"{path.name} takes {len(graph_inputs)} inputs; only one-input "
                         "graphs get a batch axis")
    for vi in [*graph_inputs, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if not dims or not (dims[0].HasField("dim_value") and dims[0].dim_value == 1):
            raise ModelError(f"{path.name}: {vi.name} has no fixed batch dimension of 1 "
                             f"({[d.dim_value or d.dim_param for d in dims]})")
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "batch"
    del g.value_info[:]  # shapes inferred for batch 1 no longer hold
    by_name = {i.name: i for i in g.initializer}
    rewritten = 0
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        init = by_name.get(node.input[1])
        if init is None:
            continue  # a computed target: the parity check tells whether it follows the batch
        target = numpy_helper.to_array(init).copy()
        if target.size and target[0] == 1:
            allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
            if allowzero and -1 in target[1:]:
                raise ModelError(f"{path.name}: Reshape {node.name or node.output[0]} cannot "
                                 "take its batch from its input")
            target[0] = -1 if allowzero else 0  # 0: the input's first dimension, the batch
            init.CopyFrom(numpy_helper.from_array(target, init.name))
            rewritten += 1
    return model.SerializeToString(), rewritten


def check_parity(single: Any, batched: Any, input_shape: list[Any]) -> float:
    """The largest difference between `batched` run on a batch of random inputs and
    `single` (ONNX Runtime sessions) run on each alone; ModelError past the tolerance or
    where the shapes differ."""
    shape = [d for d in input_shape[1:] if isinstance(d, int) and d > 0]
    if len(shape) != len(input_shape) - 1:
        raise ModelError(f"the input's shape {input_shape} is not fixed: no batch is checked")
    rng = np.random.default_rng(0)
    x = rng.random((PARITY_BATCH, *shape), dtype=np.float32) * 255
    name = single.get_inputs()[0].name
    together = batched.run(None, {name: x})
    worst = 0.0
    for k in range(PARITY_BATCH):
        alone = single.run(None, {name: x[k:k + 1]})
        if len(alone) != len(together):
            raise ModelError("the batched graph gives another number of outputs")
        for a, b in zip(alone, together, strict=True):
            if b.shape[0] != PARITY_BATCH or a.shape[1:] != b.shape[1:]:
                raise ModelError(f"an output of shape {list(a.shape)} for one image is "
                                 f"{list(b.shape)} for {PARITY_BATCH}")
            worst = max(worst, float(np.abs(a[0].astype(np.float64) - b[k]).max()))
    if worst > PARITY_TOLERANCE:
        raise ModelError(f"a batch's results differ from one image's by {worst:.2e}")
    return worst
