"""Is a map faithful to the model? Deletion and insertion curves against random maps as smooth as it.

    f = faithfulness(model, x, explanation)   # deletion / insertion AUC against surrogate random maps
    f.verdict()                               # "better", "mixed" or "worse" than random
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvdemo.errors import ConfigError
from cvdemo.explain.session import check_image, explaining
from cvdemo.explain.verb import Explanation


@dataclass
class Faithfulness:
    """Deletion and insertion scores of one map (Petsiuk et al. 2018), each against a random pixel order.

    Deletion: the target's probability as the most-attributed pixels are set to the baseline first;
    a lower area under that curve is better. Insertion: the probability as they are copied into a
    blurred image first; higher is better. AUCs are over the fraction of pixels in [0, 1]; the
    `_random_` figures are the mean over random maps as smooth as the explained one.
    """

    deletion_auc: float
    deletion_random_auc: float
    insertion_auc: float | None
    insertion_random_auc: float | None
    deletion_curve: list[float]
    insertion_curve: list[float] | None
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "verdict": self.verdict()}

    def verdict(self) -> str:
        """"better", "mixed" or "worse" than random maps: deletion wins when lower, insertion when higher.

        Deletion alone misjudges a photo the object fills (greying the hottest region still leaves object
        everywhere else, while random blobs spoil it all over), so both tests are asked when present.
        """
        wins = [self.deletion_auc < self.deletion_random_auc]
        if self.insertion_auc is not None and self.insertion_random_auc is not None:
            wins.append(self.insertion_auc > self.insertion_random_auc)
        return "better" if all(wins) else "worse" if not any(wins) else "mixed"


def pixel_order(heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices from most to least attributed (ties in random order, fixed by `seed`)."""
    flat = np.asarray(heat, dtype=np.float64).reshape(-1)
    keys = np.random.default_rng(seed).random(flat.size)
    return np.lexsort((keys, -flat))


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A strong blur of (1, C, H, W): two box filters of side ~H/10 (close to a Gaussian)."""
    k = max(3, (min(x.shape[-2:]) // 10) | 1)
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return x


def perturbation_curve(model: nn.Module, image: torch.Tensor, order: np.ndarray, target: int, *,
                       mode: str = "deletion", steps: int = 20, baseline: float = 0.0,
                       internal_batch_size: int = 16) -> np.ndarray:
    """Probability of `target` (float (steps + 1,)) as pixels are removed ("deletion": set to `baseline`)
    or inserted ("insertion": copied into a blurred image) in `order`, in `steps` equal amounts."""
    x = check_image(image, model)
    h, w = x.shape[-2:]
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    rank = torch.empty(h * w, dtype=torch.int64)
    rank[torch.as_tensor(order.copy())] = torch.arange(h * w)
    rank = rank.view(1, 1, h, w).to(x.device)
    if mode == "deletion":
        start, end = x, torch.full_like(x, float(baseline))
    elif mode == "insertion":
        start, end = _blur(x), x
    else:
        raise ConfigError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    probs = []
    with explaining(model), torch.no_grad():
        for lo in range(0, len(counts), internal_batch_size):
            c = torch.as_tensor(counts[lo:lo + internal_batch_size], device=x.device).view(-1, 1, 1, 1)
            mask = (rank < c).to(x.dtype)
            batch = start * (1 - mask) + end * mask
            probs.append(torch.softmax(model(batch).float(), dim=1)[:, target].cpu())
    return torch.cat(probs).numpy()


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equal steps over [0, 1]."""
    c = np.asarray(curve, dtype=np.float64)
    return float(((c[1:] + c[:-1]) / 2).sum() / (len(c) - 1))


def random_like(heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random map as smooth as `heat`: same Fourier amplitudes, random phases (a surrogate map).

    The fair random baseline for deletion: a smooth map (Grad-CAM) is compared with random smooth
    blobs, a speckled one (saliency) with random speckle. Random single pixels would be unfair to
    smooth maps, because scattered grey pixels fool a CNN far faster than any region removed whole.
    """
    h = np.asarray(heat, dtype=np.float64)
    spectrum = np.fft.rfft2(h - h.mean())
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(spectrum.shape))
    phase[0, 0] = 1.0
    return np.fft.irfft2(np.abs(spectrum) * phase, s=h.shape)


def faithfulness(model: nn.Module, image: torch.Tensor, explanation: Explanation | np.ndarray,
                 target: int | None = None, *, steps: int = 20, insertion: bool = True, random_maps: int = 2,
                 seed: int = 0, internal_batch_size: int = 16) -> Faithfulness:
    """Deletion (and insertion) AUC of a map, and the mean AUC of `random_maps` random maps as smooth
    as it (`random_like`), on the same image and target."""
    if isinstance(explanation, Explanation):
        heat, target = explanation.map, explanation.target if target is None else target
    else:
        heat = np.asarray(explanation)
    if target is None:
        raise ConfigError("faithfulness needs the target class of a bare map")
    if steps < 1 or random_maps < 1:
        raise ConfigError(f"steps and random_maps must be at least 1, not {steps} and {random_maps}")
    order = pixel_order(heat, seed)
    randoms = [pixel_order(random_like(heat, seed + 1 + k), seed) for k in range(random_maps)]
    target_class = target

    def curve(order: np.ndarray, mode: str) -> np.ndarray:
        return perturbation_curve(model, image, order, target_class, mode=mode, steps=steps,
                                  internal_batch_size=internal_batch_size)

    def mean_auc(mode: str) -> float:
        return float(np.mean([auc(curve(r, mode)) for r in randoms]))

    deletion = curve(order, "deletion")
    ins = curve(order, "insertion") if insertion else None
    return Faithfulness(auc(deletion), mean_auc("deletion"), auc(ins) if ins is not None else None,
                        mean_auc("insertion") if insertion else None, deletion.tolist(),
                        ins.tolist() if ins is not None else None, steps)
