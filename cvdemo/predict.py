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
from PIL import Image
from torch import nn

from cvdemo.checkpoint import check_checkpoint_meta, checkpoint_path, load_checkpoint, load_weights
from cvdemo.data import decode_image, prepare_image
from cvdemo.errors import CheckpointError, DataError, ModelError
from cvdemo.models import create_model, get_spec, imagenet_classes


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
        """The run's `which` checkpoint ("best" falls back to last.pt, see `cvdemo.checkpoint.checkpoint_path`)."""
        path, _ = checkpoint_path(run_dir, which)
        return cls.from_checkpoint(load_checkpoint(path), str(run_dir))

    @classmethod
    def pretrained(cls, name: str) -> Classifier:
        """The network with its original 1000-class ImageNet head."""
        spec = get_spec(name)
        mean, std = spec.normalization
        model = create_model(name, None, pretrained=True).eval()
        return cls(model, imagenet_classes(), spec.input_size, mean, std, 3, True, f"{name} (ImageNet)")

    def to_input(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> float (1, C, S, S) normalised as the model expects."""
        if self.center_crop:
            w, h = image.size
            side = min(w, h)
            image = image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        return prepare_image(image, size=self.image_size, mean=self.mean, std=self.std, channels=self.in_channels)

    @torch.no_grad()
    def probabilities(self, images: list[Image.Image]) -> torch.Tensor:
        """Softmax probabilities (N, classes) for a list of PIL images."""
        batch = torch.cat([self.to_input(im) for im in images])
        return torch.softmax(self.model(batch), dim=1)

    def top(self, images: list[Image.Image], k: int = 5) -> list[list[dict[str, Any]]]:
        """The k most probable classes per image, surest first: [{"class", "index", "prob"}, ...] each."""
        probs = self.probabilities(images)
        p, idx = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[{"class": self.classes[i], "index": i, "prob": float(q)} for q, i in zip(pr.tolist(), ix.tolist())]
                for pr, ix in zip(p, idx)]


def read_image_file(path: str | Path) -> Image.Image:
    """Decode an image file from disk into an upright RGB PIL image (DataError if unreadable)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    return decode_image(data, str(path))
