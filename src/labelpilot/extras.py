"""The optional extras, imported lazily: a missing one is a user error that names the
extra to install, never an ImportError traceback."""

from __future__ import annotations

import importlib
from typing import Any

from labelpilot.errors import LabelPilotError


def _extra(module: str, needs: str, extra: str) -> Any:
    """`module`, or a LabelPilotError saying what `needs` it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LabelPilotError(needs, hint=f"pip install 'labelpilot[{extra}]'") from None


def require_torch() -> Any:
    """The `torch` module ([train] extra)."""
    return _extra("torch", "this needs PyTorch", "train")


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
    return _extra("ray", "the Ray executor needs Ray", "ray")


def require_boto3() -> Any:
    """The `boto3` module ([s3] extra)."""
    return _extra("boto3", "reading images from an S3-compatible store needs boto3", "s3")
