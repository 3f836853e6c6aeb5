"""Where tensors live and in which precision: one answer for training, analysis and the CLI.

    device = resolve_device("auto")          # cuda (the current GPU: see use_slot_gpu), else mps, else cpu
    amp = amp_dtype("auto", device)          # bf16 on GPUs with native bf16, fp16 on older ones, None on the CPU
    tune_for_speed(device)                   # cudnn autotuning and TF32 matmuls, on CUDA only
    with memory_phase("validation"): ...     # an out-of-memory error in there knows which phase it came from
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from cvdemo.errors import CvdemoError

__all__ = ["resolve_device", "amp_dtype", "slot_gpu", "use_slot_gpu", "tune_for_speed", "memory_phase",
           "oom_phase", "out_of_memory_message", "eval_batch_size"]


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
    """The autocast dtype for a precision setting. auto: on CUDA bf16 where the GPU computes it natively
    (compute capability 8.0 and later: A100, H100, RTX 30xx...), fp16 on older GPUs (T4, V100), which only
    emulate bf16, slowly (the Trainer then scales the loss); full fp32 elsewhere."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def slot_gpu(slot: int) -> int | None:
    """The GPU a run holding training slot `slot` (0-based, see cvdemo.runs.wait_for_slot) trains on:
    slot i on GPU i (modulo the GPU count, should there be more slots than GPUs); None without CUDA."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return slot % count if count else None


def use_slot_gpu(slot: int | None, device: str) -> torch.device | None:
    """Pin this process to its slot's GPU (torch.cuda.set_device) when the run's `device` setting means
    CUDA, so that one run per GPU really uses every GPU instead of all sharing cuda:0. Returns the GPU."""
    if slot is None or device not in ("auto", "cuda"):
        return None
    index = slot_gpu(slot)
    if index is None:
        return None
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def tune_for_speed(device: torch.device) -> None:
    """On CUDA: let cuDNN pick the fastest convolution kernels for each input shape it meets (benchmark
    mode; results then vary in the last bits from run to run) and run fp32 matmuls and convolutions on
    TF32 tensor cores. Global switches, left alone on other devices (the CPU path stays bit-exact)."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def oom_phase(error: BaseException) -> str | None:
    """The phase (e.g. "validation") an out-of-memory error was raised in, as tagged by `memory_phase`."""
    return getattr(error, "cvdemo_phase", None)


@contextmanager
def memory_phase(phase: str) -> Iterator[None]:
    """Tag a torch.OutOfMemoryError raised inside with `phase` (the innermost phase wins), so the message
    a user sees says which pass ran out of memory (`out_of_memory_message`)."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        if oom_phase(e) is None:
            e.cvdemo_phase = phase  # type: ignore[attr-defined]
        raise


def out_of_memory_message(error: BaseException, model: str, batch_size: int) -> str:
    """One sentence for a GPU out-of-memory error during a run: which phase, and what to change. Every
    phase's batch follows --batch-size (training, and the passes without gradients at `eval_batch_size`)."""
    phase = oom_phase(error) or "training"
    half = max(1, batch_size // 2)
    keep = " (or --accumulate 2 to keep the effective batch)" if phase == "training" else ""
    return (f"the GPU ran out of memory in {phase} of {model} at batch size {batch_size}: try --batch-size "
            f"{half}{keep}, or a smaller --image-size")


CPU_EVAL_BATCH = 64


def eval_batch_size(batch_size: int, device: torch.device) -> int:
    """The batch of the passes without gradients (validation, the frozen backbone's feature cache, the
    test pass) for a run training at `batch_size`. On a GPU twice the training batch: no activations are
    kept for a backward pass, so it fits in less memory than a training step, and halving --batch-size
    after an out-of-memory error halves it too. On the CPU 64 whatever the training batch: a larger batch
    saves little per image there and makes larger blocks for the allocator (EfficientNet-Lite0's feature pass
    at 128 px on 2 cores: 160 images/s at 64, 134 at 256, with `cvdemo.allocator` tuned; 45 at 256 without)."""
    if device.type == "cpu":
        return CPU_EVAL_BATCH
    return 2 * batch_size
