"""The optional extras, imported lazily: a missing one is a user error that names the
extra to install, never an ImportError traceback."""

from __future__ import annotations

from typing import Any

from labelpilot.errors import LabelPilotError


def require_torch() -> Any:
    """The `torch` module ([train] extra)."""
    try:
        import torch
    except ImportError:
        raise LabelPilotError("this needs PyTorch",
                              hint="pip install 'labelpilot[train]'") from None
    return torch


def require_cvat_sdk() -> Any:
    """`cvat_sdk.auto_annotation` and `cvat_sdk.models` ([cvat] extra)."""
    try:
        import cvat_sdk.auto_annotation as cvataa
        from cvat_sdk import models
    except ImportError:
        raise LabelPilotError("this needs the CVAT SDK",
                              hint="pip install 'labelpilot[cvat]'") from None
    return cvataa, models


def require_onnx(what: str) -> Any:
    """The `onnx` package (a dependency; an install without it gets a ModelError that
    names it), for `what`."""
    from labelpilot.errors import ModelError

    try:
        import onnx
    except ImportError:
        raise ModelError(f"the onnx package is needed {what}",
                         hint="pip install onnx (a dependency of labelpilot)") from None
    return onnx


def require_ray() -> Any:
    """The `ray` module ([ray] extra)."""
    try:
        import ray
    except ImportError:
        raise LabelPilotError("the Ray executor needs Ray",
                              hint="pip install 'labelpilot[ray]'") from None
    return ray


def require_boto3() -> Any:
    """The `boto3` module ([s3] extra)."""
    try:
        import boto3
    except ImportError:
        raise LabelPilotError("reading images from an S3-compatible store needs boto3",
                              hint="pip install 'labelpilot[s3]'") from None
    return boto3
