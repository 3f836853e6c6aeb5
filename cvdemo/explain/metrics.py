"""Is a map faithful to the model? Deletion and insertion curves against random maps as smooth as it,
plus the libraries' scores: Captum's infidelity and sensitivity_max, pytorch-grad-cam's ROAD.

    f = faithfulness(model, x, explanation)   # deletion / insertion AUC against surrogate random maps
    f.verdict()                               # "better", "mixed" or "worse" than random
    f.infidelity, f.sensitivity, f.road       # lower, lower, higher is better (None when not computed)

Deletion / insertion with surrogate random maps are ours (no library has that teaching view); the
other three call the libraries (imported on first use), and ROAD only when pytorch-grad-cam is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    The library scores (None when not computed; see `infidelity_score`, `sensitivity_score`, `road_score`):
    infidelity, how badly the map predicts the change of the target's logit under small random noise
    (lower is better); sensitivity, how much the map itself changes when the image barely does (lower is
    better); ROAD, how much more the probability drops when the most- rather than the least-attributed
    pixels are filled in from their neighbours (higher is better).
    """

    deletion_auc: float
    deletion_random_auc: float
    insertion_auc: float | None
    insertion_random_auc: float | None
    deletion_curve: list[float]
    insertion_curve: list[float] | None
    steps: int
    infidelity: float | None = None    # Captum's infidelity (Yeh et al. 2019), normalised map: lower is better
    sensitivity: float | None = None   # Captum's sensitivity_max: lower is better
    road: float | None = None          # pytorch-grad-cam's ROADCombined (Rong et al. 2022): higher is better

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


def infidelity_score(model: nn.Module, image: torch.Tensor, heat: np.ndarray, target: int, *, samples: int = 16,
                     stdev: float = 0.1, seed: int = 0, internal_batch_size: int = 16) -> float:
    """Captum's `infidelity` of a map: the mean squared error between the map's prediction of how the
    target's logit changes under Gaussian noise (std `stdev`, model-input units) and the actual change,
    over `samples` noisy copies. The (H, W) map counts for every channel; it is rescaled optimally first
    (normalize=True), so the map's units do not matter. Lower is better."""
    from captum.metrics import infidelity

    x = check_image(image, model)
    attributions = torch.as_tensor(np.asarray(heat, dtype=np.float32), device=x.device).expand_as(x)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(inputs.shape).to(inputs.device) * stdev
        return noise, inputs - noise

    with explaining(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        score = infidelity(model, perturb, x, attributions, target=target, n_perturb_samples=samples,
                           max_examples_per_batch=min(internal_batch_size, samples), normalize=True)
    return float(score[0])


def sensitivity_score(model: nn.Module, image: torch.Tensor, explanation: Explanation, *, samples: int = 4,
                      radius: float = 0.02, seed: int = 0) -> float:
    """Captum's `sensitivity_max` of a method: the largest relative change of its map
    (||map(x + noise) - map(x)|| / ||map(x)||) over `samples` copies of the image with uniform noise of at
    most `radius` (model-input units). Runs the method `samples` more times. Lower is better."""
    from captum.metrics import sensitivity_max

    from cvdemo.explain.verb import explain

    x = check_image(image, model)
    given = torch.as_tensor(explanation.map, device=x.device)

    def explain_batch(inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        xb = inputs[0] if isinstance(inputs, tuple) else inputs  # Captum passes a tuple of one input
        if xb.shape[0] == 1 and torch.equal(xb, x):  # the unperturbed image: its map is known
            return (given.unsqueeze(0),)  # a tuple: sensitivity_max iterates over what we return
        with torch.enable_grad():  # sensitivity_max calls us under no_grad; gradient methods need it
            maps = [explain(model, xb[i:i + 1], explanation.method, explanation.target,
                            **explanation.options).map for i in range(xb.shape[0])]
        return (torch.as_tensor(np.stack(maps), device=x.device),)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        score = sensitivity_max(explain_batch, x, perturb_radius=radius, n_perturb_samples=samples)
    return float(score[0])


def road_score(model: nn.Module, image: torch.Tensor, heat: np.ndarray, target: int, *,
               percentiles: Sequence[int] = (20, 40, 60, 80), seed: int = 0) -> float | None:
    """pytorch-grad-cam's ROADCombined (Remove And Debias): at each percentile, the pixels above (or
    below) it are filled in by noisy linear interpolation from their neighbours, and the score is half
    the mean of (the target's probability drop when the most-attributed pixels are removed) - (its drop
    when the least-attributed are). Higher is better. None when the grad-cam package is not installed."""
    try:
        from pytorch_grad_cam.metrics.road import ROADCombined
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    except ImportError:
        return None
    x = check_image(image, model)
    cams = np.asarray(heat, dtype=np.float32)[None]
    with explaining(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the imputer adds noise from torch's global generator (on the CPU)
        score = ROADCombined(percentiles=list(percentiles))(x, cams, [ClassifierOutputSoftmaxTarget(target)], model)
    return float(np.asarray(score).reshape(-1)[0])


def faithfulness(model: nn.Module, image: torch.Tensor, explanation: Explanation | np.ndarray,
                 target: int | None = None, *, steps: int = 20, insertion: bool = True, random_maps: int = 2,
                 seed: int = 0, internal_batch_size: int = 16, infidelity_samples: int = 8,
                 sensitivity_samples: int = 3, road_percentiles: Sequence[int] = (25, 50, 75)) -> Faithfulness:
    """Deletion (and insertion) AUC of a map, and the mean AUC of `random_maps` random maps as smooth
    as it (`random_like`), on the same image and target; with Captum's infidelity (`infidelity_samples`
    noisy copies, 0 = skip), sensitivity_max (`sensitivity_samples` more runs of the method, 0 = skip;
    only for an `Explanation`, which names its method) and pytorch-grad-cam's ROAD at `road_percentiles`
    (() = skip; when installed). Cost on a 224x224 image: ROAD, 4 forward passes and 2 sparse linear
    solves (0.1-1 s each on a CPU) per percentile; sensitivity, `sensitivity_samples` times the method's
    own time; infidelity, `infidelity_samples` forward passes."""
    if isinstance(explanation, Explanation):
        heat, target = explanation.map, explanation.target if target is None else target
    else:
        heat = np.asarray(explanation)
    if target is None:
        raise ConfigError("faithfulness needs the target class of a bare map")
    if steps < 1 or random_maps < 1:
        raise ConfigError(f"steps and random_maps must be at least 1, not {steps} and {random_maps}")
    if infidelity_samples < 0 or sensitivity_samples < 0:
        raise ConfigError("infidelity_samples and sensitivity_samples must be at least 0 (0 = skip), not "
                          f"{infidelity_samples} and {sensitivity_samples}")
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
    return Faithfulness(
        auc(deletion), mean_auc("deletion"), auc(ins) if ins is not None else None,
        mean_auc("insertion") if insertion else None, deletion.tolist(), ins.tolist() if ins is not None else None,
        steps,
        infidelity=infidelity_score(model, image, heat, target_class, samples=infidelity_samples, seed=seed,
                                    internal_batch_size=internal_batch_size) if infidelity_samples else None,
        sensitivity=sensitivity_score(model, image, explanation, samples=sensitivity_samples, seed=seed)
        if sensitivity_samples and isinstance(explanation, Explanation) else None,
        road=road_score(model, image, heat, target_class, percentiles=road_percentiles, seed=seed)
        if road_percentiles else None)
