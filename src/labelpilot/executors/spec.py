"""The executor a job runs on, as its parameters say (`{"kind": "ray", "address": ...}`)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

from labelpilot.errors import ValidationError
from labelpilot.executors.locations import S3, check_url
from labelpilot.executors.work import ImageRef, Work

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    def map(self, work: Work, refs: list[ImageRef]) -> Generator[tuple[ImageRef, Any], None, None]:
        """(ref, result) for each image, in the given order: what `Worker.run` returns."""


@dataclass(frozen=True)
class ExecutorSpec:
    """`kind`: local or ray. For ray: `address` (None: a cluster this process starts, or
    the one RAY_ADDRESS names; `auto`: the cluster `ray start` made on this machine;
    `ray://HOST:10001`: a remote one), `workers` (actors, one CPU each; default: one per
    CPU of the cluster), `gpus_per_worker` and `blobs`, where the workers read images
    (None: the workspace's blob folder, on a file system they share; a folder's path as
    they mount it; or `s3://bucket/prefix`, filled by the driver, with `s3_endpoint` for
    a store that is not AWS; see `executors.locations`)."""

    kind: str = "local"
    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    blobs: str | None = None
    s3_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValidationError(f"executor must be one of {', '.join(EXECUTORS)}, not "
                                  f"{self.kind!r}")
        if self.workers is not None and not 1 <= self.workers <= 4096:
            raise ValidationError(f"workers must be 1 to 4096, not {self.workers}")
        if not 0 <= self.gpus_per_worker <= 16:
            raise ValidationError(f"gpus per worker must be 0 to 16, not {self.gpus_per_worker}")
        if self.kind == "local" and (self.address or self.workers or self.gpus_per_worker
                                     or self.blobs or self.s3_endpoint):
            raise ValidationError("a Ray address, workers, GPUs per worker and a blob "
                                  "location are for the ray executor",
                                  hint="add --executor ray")
        if self.blobs:
            check_url(self.blobs)
        if self.s3_endpoint and not (self.blobs or "").startswith(S3):
            raise ValidationError("an S3 endpoint is for a blob location in an object store",
                                  hint="add --blobs s3://BUCKET/PREFIX")
        if self.s3_endpoint and not self.s3_endpoint.startswith(("http://", "https://")):
            raise ValidationError(f"the S3 endpoint must be an http(s) URL, not "
                                  f"{self.s3_endpoint!r}")

    def params(self) -> dict[str, Any] | None:
        """What a job's parameters keep (None: the local executor)."""
        if self.kind == "local":
            return None
        out = {"kind": self.kind, "address": self.address, "workers": self.workers,
               "gpus_per_worker": self.gpus_per_worker}
        if self.blobs:
            out.update(blobs=self.blobs, s3_endpoint=self.s3_endpoint)
        return out

    @classmethod
    def from_params(cls, p: dict[str, Any] | None) -> ExecutorSpec:
        if not p:
            return cls()
        return cls(str(p.get("kind", "local")), p.get("address"), p.get("workers"),
                   float(p.get("gpus_per_worker") or 0.0), p.get("blobs"),
                   p.get("s3_endpoint"))


def open_executor(spec: ExecutorSpec) -> Executor:
    if spec.kind == "ray":
        from labelpilot.executors.cluster import RayExecutor

        return RayExecutor(spec)
    from labelpilot.executors.local import LocalExecutor

    return LocalExecutor()
