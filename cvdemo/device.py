"""Where tensors live and in which precision: one answer for training, analysis and the CLI.

    device = resolve_device("auto")          # cuda, else mps, else cpu
    amp = amp_dtype("auto", device)          # bf16 on CUDA, None (full fp32) elsewhere
"""

from __future__ import annotations

import torch

from cvdemo.errors import CvdemoError

__all__ = ["resolve_device", "amp_dtype"]


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for an absent accelerator is a clear error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CvdemoError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not has_mps:
        raise CvdemoError("--device mps was asked for but Apple's MPS is not available; use --device auto or cpu")
    return torch.device(name)


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting: auto means bf16 on CUDA and full fp32 elsewhere."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
