"""Where a job's per-image model work runs: in this process (`local`: two threads, one
ONNX thread each) or on a Ray cluster (`ray`: an actor per worker, each loading the model
once). A job describes the work once (`Work`: the model by name, version and checksums,
the operation and its options) and hands over images as content-addressed references
(`ImageRef`: the blob's SHA-256 and suffix, read by the worker from the workspace's blob
folder on a shared file system). Results come back in the images' order, so the one
process that writes the store writes them as a local run would, image by image."""

from labelpilot.executors.batches import Batches
from labelpilot.executors.spec import EXECUTORS, ExecutorSpec, open_executor
from labelpilot.executors.work import (
    Failure,
    ImageRef,
    Operation,
    Work,
    plan_candidate,
    plan_work,
    transcriptions,
)

__all__ = ["EXECUTORS", "Batches", "ExecutorSpec", "Failure", "ImageRef", "Operation", "Work",
           "open_executor", "plan_candidate", "plan_work", "transcriptions"]
