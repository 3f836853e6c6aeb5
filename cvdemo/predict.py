"""Top-k classification of images, from a run folder or from a pretrained ImageNet network.

A checkpoint carries the architecture, class names, input size and normalisation,
so `Classifier.from_run(run_dir)` needs nothing else. `Classifier.pretrained(name)`
classifies into the 1000 ImageNet classes with no training at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvdemo import runs
from cvdemo.errors import CheckpointError, DataError

MAX_CLASSES = 100_000  # a checkpoint claiming more is refused before a head that size is allocated


@dataclass
class Classifier:
    model: nn.Module
    classes: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_channels: int
    center_crop: bool   # ImageNet convention: resize the short side, crop the centre; runs use the whole image
    source: str         # what made these predictions, for display

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], source: str) -> Classifier:
        from cvdemo.errors import ModelError
        from cvdemo.models import create_model

        check_checkpoint_meta(ckpt, source)
        try:
            model = create_model(ckpt["model"], ckpt["num_classes"], pretrained=False,
                                 in_channels=ckpt["in_channels"], **ckpt.get("model_kwargs", {}))
        except ModelError as e:
            raise CheckpointError(f"checkpoint from {source} cannot be used: {e}") from None
        load_weights(model, ckpt["state_dict"], f"checkpoint from {source}",
                     f"architecture {ckpt['model']} with {ckpt['num_classes']} classes")
        model.eval()
        return cls(model, list(ckpt["classes"]), int(ckpt["image_size"]), tuple(ckpt["mean"]),
                   tuple(ckpt["std"]), int(ckpt["in_channels"]), False, source)

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best") -> Classifier:
        run_dir = Path(run_dir)
        path = run_dir / f"{which}.pt"
        if not path.exists() and which == "best":
            path = run_dir / "last.pt"
        if not path.exists():
            raise CheckpointError(f"run {run_dir.name} has no checkpoint yet (it has not finished an epoch)")
        return cls.from_checkpoint(runs.load_checkpoint(path), str(run_dir))

    @classmethod
    def pretrained(cls, name: str) -> Classifier:
        """The network with its original 1000-class ImageNet head."""
        from cvdemo.models import create_model, get_spec, imagenet_classes

        spec = get_spec(name)
        model = create_model(name, None, pretrained=True).eval()
        return cls(model, imagenet_classes(), spec.input_size, tuple(spec.mean), tuple(spec.std), 3, True,
                   f"{name} (ImageNet)")

    def to_input(self, image: Any) -> torch.Tensor:
        """One PIL image -> float (1, C, S, S) normalised as the model expects."""
        from cvdemo.data import prepare_image

        if self.center_crop:
            w, h = image.size
            side = min(w, h)
            image = image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        return prepare_image(image, size=self.image_size, mean=self.mean, std=self.std, channels=self.in_channels)

    @torch.no_grad()
    def probabilities(self, images: list[Any]) -> torch.Tensor:
        """Softmax probabilities (N, classes) for a list of PIL images."""
        batch = torch.cat([self.to_input(im) for im in images])
        return torch.softmax(self.model(batch), dim=1)

    def top(self, images: list[Any], k: int = 5) -> list[list[dict[str, Any]]]:
        probs = self.probabilities(images)
        p, idx = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[{"class": self.classes[i], "index": i, "prob": float(q)} for q, i in zip(pr.tolist(), ix.tolist())]
                for pr, ix in zip(p, idx)]


def check_checkpoint_meta(ckpt: dict[str, Any], source: str) -> None:
    """What inference reads from a checkpoint has the right types and sane values (CheckpointError if not),
    before a model is built from it: a file from a stranger must not ask for a billion classes."""
    import math

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


def read_image_file(path: str | Path) -> Any:
    """Decode an image file from disk into an upright RGB PIL image (DataError if unreadable)."""
    from cvdemo.data import decode_image

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    return decode_image(data, str(path))
