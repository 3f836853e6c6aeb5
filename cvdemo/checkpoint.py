"""Checkpoints: writing and reading `.pt` files, checking what they claim, and which one a run answers with.

    path, which = checkpoint_path(run_dir)            # best.pt, else last.pt; which is "best" or "last"
    ckpt = load_checkpoint(path)                      # weights_only=True: never unpickles code
    check_checkpoint_meta(ckpt, str(run_dir))         # sane class count, sizes, normalisation
    load_weights(model, ckpt["state_dict"], "best.pt of run x", "lenet with 10 classes")

The rule "best.pt, else last.pt" lives here and nowhere else: every analysis, the
classifier and the pages ask `checkpoint_path`. The module imports torch only inside the
functions that need it, so the CLI parser and the pages can use `checkpoint_path` cheaply.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvdemo.errors import CheckpointError, ConfigError
from cvdemo.runs import write_atomic

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CHECKPOINTS", "CHECKPOINT_FORMAT", "MAX_CLASSES", "checkpoint_path", "has_checkpoint",
           "save_checkpoint", "checkpoint_bytes", "load_checkpoint", "check_checkpoint_meta", "load_weights"]

CHECKPOINTS = ("best", "last")  # best.pt: best validation metric; last.pt: after the last finished epoch
CHECKPOINT_FORMAT = "cvdemo-checkpoint/1"
MAX_CLASSES = 100_000  # a checkpoint claiming more is refused before a head that size is allocated


# -- which checkpoint ----------------------------------------------------------------------------

def checkpoint_path(run_dir: str | Path, checkpoint: str = "best") -> tuple[Path, str]:
    """(file, name) of a run's checkpoint; "best" falls back to last.pt when a run never saved best.pt.

    ConfigError for a name other than "best"/"last"; CheckpointError when the run has no such file yet.
    """
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {checkpoint!r}")
    run_dir = Path(run_dir)
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file() and checkpoint == "best" and (run_dir / "last.pt").is_file():
        return run_dir / "last.pt", "last"
    if not path.is_file():
        raise CheckpointError(f"run {run_dir.name} has no {checkpoint}.pt yet (it has not finished an epoch)")
    return path, checkpoint


def has_checkpoint(run_dir: str | Path, checkpoint: str = "best") -> bool:
    """True when `checkpoint_path(run_dir, checkpoint)` would find a file (never raises for a missing one)."""
    try:
        checkpoint_path(run_dir, checkpoint)
    except CheckpointError:
        return False
    except OSError:  # an unreadable folder
        return False
    return True


# -- files -----------------------------------------------------------------------------------------

def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: a crash mid-write keeps the old checkpoint."""
    write_atomic(Path(path), checkpoint_bytes(payload))


def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    """The file `save_checkpoint` writes, in memory: a snapshot of the tensors as they are now, for a
    caller that writes it later (`write_atomic`)."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buf)
    return buf.getvalue()


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with weights_only=True (never unpickles code); damaged or foreign files -> CheckpointError."""
    import torch

    path = Path(path)

    def damaged(detail: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path.name} is damaged or not a PyTorch file{detail}: train the run "
                               f"again, or restore the file from a copy")

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: train the run first, or check the path")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise damaged(" (it is empty)" if path.stat().st_size == 0 else "")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path.name} holds Python objects besides weights and was refused for "
                              f"safety ({_first_line(e)}): use only checkpoints written by cvdemo, and never "
                              f"load this file with plain torch.load") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            zipfile.BadZipFile, MemoryError) as e:
        raise damaged(f" ({_first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} is not a cvdemo checkpoint; train a run with cvdemo to get one")
    return ckpt


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__


# -- contents --------------------------------------------------------------------------------------

def check_checkpoint_meta(ckpt: dict[str, Any], source: str) -> None:
    """What inference reads from a checkpoint has the right types and sane values (CheckpointError if not),
    before a model is built from it: a file from a stranger must not ask for a billion classes."""
    import torch

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint from {source} {what}; it was not written by cvdemo or was edited: "
                               f"train the run again")

    for key in ("model", "num_classes", "classes", "in_channels", "image_size", "mean", "std", "state_dict"):
        if key not in ckpt:
            raise bad(f"lacks '{key}'")
    n = ckpt["num_classes"]
    if not isinstance(ckpt["model"], str):
        raise bad("names no architecture")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CLASSES:
        raise bad(f"has a class count of {str(n)[:20]!r} (1 to {MAX_CLASSES:,} expected)")
    classes = ckpt["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise bad("has no list of class names")
    if len(classes) != n:
        raise bad(f"names {len(classes)} classes but its head has {n}")
    if ckpt["in_channels"] not in (1, 3) or isinstance(ckpt["in_channels"], bool):
        raise bad(f"expects {str(ckpt['in_channels'])[:20]!r} input channels (1 or 3 expected)")
    size = ckpt["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
        raise bad(f"has an input size of {str(size)[:20]!r} pixels (8 to 4096 expected)")
    for key in ("mean", "std"):
        v = ckpt[key]
        if (not isinstance(v, (list, tuple)) or len(v) not in (1, ckpt["in_channels"])
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
                or (key == "std" and any(x <= 0 for x in v))):
            raise bad(f"has an unusable normalisation {key}")
    if not isinstance(ckpt.get("model_kwargs", {}), dict):
        raise bad("has malformed model options")
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in sd.items()):
        raise bad("holds no weights (state_dict is not a table of tensors)")


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str, expected: str) -> None:
    """load_state_dict, with a mismatch (another architecture or class count) as one CheckpointError sentence."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    shaped = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or extra or shaped:
        if shaped:
            k = shaped[0]
            detail = f"{k} is {list(state_dict[k].shape)} there but {list(own[k].shape)} here"
        else:
            detail = f"{len(missing)} weights missing, {len(extra)} unexpected" + \
                     (f", e.g. {(missing or extra)[0]}" if missing or extra else "")
        raise CheckpointError(f"{what} does not fit {expected} ({detail}): it was saved from another "
                              f"architecture or class count; use it with the run that made it")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:  # dtype or other surprises
        raise CheckpointError(f"{what} does not fit {expected} ({str(e).splitlines()[0][:120]}): "
                              f"use it with the run that made it") from None
