"""Fine-tuning (the `[train]` extra: PyTorch, imported lazily)."""

from __future__ import annotations

from typing import Any

from labelpilot.errors import LabelPilotError


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise LabelPilotError("training needs PyTorch",
                              hint="pip install 'labelpilot[train]'") from None
    return torch
