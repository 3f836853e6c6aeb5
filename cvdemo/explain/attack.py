"""Adversarial examples: noise too faint to see that changes a network's answer (Captum's FGSM and PGD).

    result = attack_image(classifier, photo, "pgd", parse_epsilon("4/255"))            # untargeted
    result = attack_image(classifier, photo, "pgd", 8 / 255, target=859)               # "make it say toaster"
    result.before[0], result.after[0]      # {"class", "index", "prob"}: the answer before and after
    result.max_change                      # the largest pixel change, in [0, 1] pixel units (<= epsilon)
    curve = robustness_curve(run_dir, epsilons=(0, 2 / 255, 8 / 255))                 # test top-1 per epsilon

The attack works on the model's normalised input x = (pixel - mean) / std, as the network sees it. Epsilon is a
fraction of the pixel range [0, 1] (4/255: four steps of an 8-bit pixel); per channel it becomes epsilon / std
in normalised units, and the valid pixel range [0, 1] becomes the bounds [-mean / std, (1 - mean) / std] that
Captum clamps every step to. The maths (gradient sign steps, projection onto the epsilon ball) is Captum's.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cvdemo.errors import ConfigError
from cvdemo.explain.session import check_target, explaining

if TYPE_CHECKING:
    from PIL import Image

    from cvdemo.predict import Classifier

ATTACKS = ("fgsm", "pgd")
ATTACK_NOTES = {"fgsm": "fast gradient sign (Goodfellow et al. 2015): one step of size epsilon",
                "pgd": "projected gradient descent (Madry et al. 2018): several smaller steps, kept within epsilon"}
PGD_STEPS = 10
PGD_STEP_FACTOR = 2.5   # each PGD step is 2.5 * epsilon / steps (Madry et al.): the ball's edge is reachable
# Captum's PGD hands each step a fresh tensor and warns that it set requires_grad on it: noise, not news. A filter
# set once, because warnings.catch_warnings() per call is not thread-safe (the app attacks in server threads).
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients", category=UserWarning)
CURVE_EPSILONS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255)
_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*/\s*([0-9]*\.?[0-9]+)\s*$")


def parse_epsilon(value: str | float) -> float:
    """Epsilon as a fraction of the pixel range: 0.0157, "0.0157" or "4/255"; ConfigError unless 0 <= it <= 1."""
    text = str(value).strip()
    fraction = _FRACTION.match(text)
    try:
        eps = float(fraction[1]) / float(fraction[2]) if fraction else float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"epsilon {text!r} is not a number: give a fraction of the pixel range such as 0.0157 "
                          "or 4/255") from None
    if not 0.0 <= eps <= 1.0 or eps != eps:
        hint = f" (did you mean {text}/255?)" if 1.0 < eps <= 255.0 else ""
        raise ConfigError(f"epsilon must lie between 0 and 1 (a fraction of the pixel range), not {text}{hint}")
    return eps


def epsilon_label(eps: float) -> str:
    """'4/255 (0.0157)': epsilon in 8-bit pixel steps, as people see it, and as a fraction."""
    steps = eps * 255
    shown = f"{steps:.0f}" if abs(steps - round(steps)) < 1e-6 else f"{steps:.1f}"
    return f"{shown}/255 ({eps:.4f})"


@dataclass
class AttackResult:
    """One attacked image; pictures are the model's input size, pixel units are [0, 1]."""

    method: str
    epsilon: float                  # fraction of the pixel range
    target: int | None              # the class a targeted attack aimed for; None: any class but the answer
    original: np.ndarray            # uint8 (H, W, 3): the model input as a picture
    adversarial: np.ndarray         # uint8 (H, W, 3): the attacked input (rounded to 8 bits for display)
    perturbation: np.ndarray        # float32 (H, W, C): adversarial - original, in pixel units, within +-epsilon
    before: list[dict[str, Any]]    # top-k {"class", "index", "prob"} of the original
    after: list[dict[str, Any]]     # top-k of the attacked input (the float input, as the attack left it)
    max_change: float               # max |perturbation|
    seconds: float
    steps: int = 1
    target_name: str | None = None  # the target's class name

    @property
    def success(self) -> bool:
        """Targeted: the network now answers the target; untargeted: its answer changed."""
        if self.target is not None:
            return self.after[0]["index"] == self.target
        return self.after[0]["index"] != self.before[0]["index"]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "epsilon": self.epsilon, "epsilon_255": self.epsilon * 255,
                "target": self.target, "target_class": self.target_name, "success": self.success, "before": self.before, "after": self.after,
                "max_change": self.max_change, "max_change_255": self.max_change * 255, "seconds": self.seconds,
                "steps": self.steps}


def _normalisation(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
    """(mean, std, lower, upper) as (1, C, 1, 1) tensors on x's device: pixel = x * std + mean, pixel in [0, 1]."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    if m.shape[1] not in (1, x.shape[1]):
        raise ConfigError(f"the normalisation has {m.shape[1]} channels but the input has {x.shape[1]}")
    return m, s, (0.0 - m) / s, (1.0 - m) / s


def perturb(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, mean: tuple[float, ...],
            std: tuple[float, ...], method: str, epsilon: float, targeted: bool = False,
            steps: int = PGD_STEPS) -> torch.Tensor:
    """Captum's FGSM or PGD on a batch of normalised inputs (B, C, H, W): the attacked batch, every pixel within
    `epsilon` (pixel units) of the original and inside [0, 1]. `labels`: the classes to move away from
    (untargeted) or towards (targeted)."""
    from captum.robust import FGSM, PGD

    if method not in ATTACKS:
        raise ConfigError(f"unknown attack {method!r}: choose {' or '.join(ATTACKS)}")
    if steps < 1:
        raise ConfigError(f"PGD needs at least one step, not {steps}")
    _, s, lower, upper = _normalisation(x, mean, std)
    radius = epsilon / s                                      # the pixel-unit ball, per channel, in input units
    loss = nn.CrossEntropyLoss(reduction="none")
    if epsilon == 0:
        return x.detach().clone()
    x = x.detach()
    with explaining(model):                                   # eval mode, parameters frozen (restored after)
        if method == "fgsm":
            out = FGSM(model, loss, lower_bound=lower, upper_bound=upper).perturb(
                x, epsilon=radius, target=labels, targeted=targeted)
        else:
            out = PGD(model, loss, lower_bound=lower, upper_bound=upper).perturb(
                x, radius=radius, step_size=radius * (PGD_STEP_FACTOR / steps), step_num=steps, target=labels,
                targeted=targeted)
    return out.detach()


def _top(probs: torch.Tensor, classes: list[str], k: int) -> list[dict[str, Any]]:
    p, idx = probs.topk(min(k, probs.shape[-1]))
    return [{"class": classes[i], "index": i, "prob": float(q)} for q, i in zip(p.tolist(), idx.tolist())]


def _picture(x: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> np.ndarray:
    pixels = (x * s + m).clamp(0, 1)[0]
    pixels = pixels.repeat(3, 1, 1) if pixels.shape[0] == 1 else pixels
    return (pixels.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def attack(model: nn.Module, x: torch.Tensor, classes: list[str], *, mean: tuple[float, ...],
           std: tuple[float, ...], method: str = "pgd", epsilon: float = 4 / 255, target: int | None = None,
           steps: int = PGD_STEPS, k: int = 5) -> AttackResult:
    """Attack one normalised model input (1, C, H, W): untargeted (away from the network's answer) or, with
    `target`, towards that class. Returns pictures, the perturbation and the top-k before and after."""
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must lie between 0 and 1 (a fraction of the pixel range), not {epsilon}")
    if target is not None:
        target = check_target(target, len(classes))
    device = next(model.parameters()).device
    x = x.detach().to(device=device, dtype=torch.float32)
    started = time.perf_counter()
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)[0]
    answer = int(probs.argmax())
    labels = torch.tensor([answer if target is None else target], device=device)
    adv = perturb(model, x, labels, mean=mean, std=std, method=method, epsilon=epsilon,
                  targeted=target is not None, steps=steps)
    with torch.no_grad():
        probs_after = torch.softmax(model(adv), dim=1)[0]
    seconds = time.perf_counter() - started
    m, s, _, _ = _normalisation(x, mean, std)
    change = ((adv - x) * s)[0]                               # pixel units
    return AttackResult(method, float(epsilon), target, _picture(x, m, s), _picture(adv, m, s),
                        change.permute(1, 2, 0).cpu().numpy().astype(np.float32), _top(probs, classes, k),
                        _top(probs_after, classes, k), float(change.abs().max()), seconds,
                        steps if method == "pgd" else 1, None if target is None else classes[target])


def attack_image(classifier: Classifier, image: Image.Image, method: str = "pgd", epsilon: float = 4 / 255,
                 target: int | None = None, **options: Any) -> AttackResult:
    """`attack` on a PIL image through a Classifier (cropped, resized and normalised as it classifies)."""
    return attack(classifier.model, classifier.to_input(image), classifier.classes, mean=classifier.mean,
                  std=classifier.std, method=method, epsilon=epsilon, target=target, **options)


def magnified(perturbation: np.ndarray, epsilon: float) -> np.ndarray:
    """The perturbation made visible: uint8 (H, W, 3), mid-grey = no change, black / white = -+epsilon."""
    p = perturbation if perturbation.shape[-1] == 3 else np.repeat(perturbation[..., :1], 3, axis=-1)
    scale = max(float(epsilon), 1e-12)
    return ((p / scale).clip(-1, 1) * 127.5 + 127.5).round().astype(np.uint8)


def robustness_curve(run_dir: str | Path, epsilons: tuple[float, ...] = CURVE_EPSILONS, *, method: str = "fgsm",
                     split: str = "test", checkpoint: str = "best", batch_size: int = 128,
                     steps: int = PGD_STEPS, limit: int | None = None) -> dict[str, Any]:
    """Top-1 of a run's split under an untargeted attack at each epsilon (each image attacked away from its true
    class), batched, with a progress phase per curve: {"epsilons", "top1", "method", "split", "images"}."""
    from cvdemo.data import make_loader, to_model_input
    from cvdemo.evaluate import load_split
    from cvdemo.predict import Classifier
    from cvdemo.progress import phase

    eps_list = [parse_epsilon(e) for e in epsilons]
    if not eps_list:
        raise ConfigError("the robustness curve needs at least one epsilon")
    if method not in ATTACKS:
        raise ConfigError(f"unknown attack {method!r}: choose {' or '.join(ATTACKS)}")
    classifier = Classifier.from_run(run_dir, checkpoint)
    images, _ = load_split(run_dir, split)
    if limit is not None:
        from cvdemo.data import stratified_subset

        images = images.subset(stratified_subset(images.labels, limit, 0))
    device = next(classifier.model.parameters()).device
    right = [0] * len(eps_list)
    label = f"{method.upper()} robustness curve: {len(eps_list)} epsilons"
    with phase("robustness", label, len(images) * len(eps_list)) as meter:
        for pixels, y in make_loader(images, batch_size=batch_size, shuffle=False):
            x = to_model_input(pixels.to(device), size=classifier.image_size, mean=classifier.mean,
                               std=classifier.std, channels=classifier.in_channels)
            y = y.to(device)
            for i, eps in enumerate(eps_list):
                adv = perturb(classifier.model, x, y, mean=classifier.mean, std=classifier.std, method=method,
                              epsilon=eps, steps=steps)
                with torch.no_grad():
                    right[i] += int((classifier.model(adv).argmax(1) == y).sum())
                meter.add(len(y))
    n = len(images)
    return {"epsilons": eps_list, "top1": [r / max(n, 1) for r in right], "method": method, "split": split,
            "images": n, "run": str(run_dir)}
