"""The `optimize` job: make a faster variant of a workspace's model and keep it only if it
passes the accuracy and speed gate (see `optimize.gate`). Re-run after an interruption,
it starts over (it writes nothing until a variant is kept)."""

from __future__ import annotations

from typing import Any

from labelpilot.errors import LabelPilotError
from labelpilot.executors import ExecutorSpec
from labelpilot.jobs.engine import JobContext


def plan_optimize(name: str, *, int8: bool = True, fp16: bool = False, device: str = "cpu",
                  calibrate_on: str = "train", images: int = 64, method: str = "percentile",
                  max_loss: float = 1.0, min_speedup: float = 1.5, prune: bool = True,
                  only: str | None = None, executor: ExecutorSpec | None = None
                  ) -> dict[str, Any]:
    """The job's parameters, checked before it is queued."""
    from labelpilot.optimize.gate import OptimizeConfig, check_config

    cfg = OptimizeConfig(int8=int8, fp16=fp16, device=device, calibrate_on=calibrate_on,
                         images=images, method=method, max_loss=max_loss,
                         min_speedup=min_speedup, prune=prune, only=only,
                         executor=executor.params() if executor else None)
    check_config(cfg)
    if images < 1 or max_loss < 0 or min_speedup <= 0:
        raise LabelPilotError("--images must be 1 or more, --max-loss 0 or more and "
                              "--min-speedup above 0")
    return {"model": name, **cfg.__dict__}


def run_optimize(ctx: JobContext) -> dict[str, Any]:
    from labelpilot.optimize.gate import OptimizeConfig, optimize_model

    p = dict(ctx.params)
    name = p.pop("model")
    return optimize_model(ctx.ws, name, OptimizeConfig(**p),
                          progress=lambda _stage, done, total: ctx.report(done, total))
