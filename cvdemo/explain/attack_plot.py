"""Figures of attacks (PNG, matplotlib's Agg backend): original | magnified perturbation | adversarial, and the
robustness curve. matplotlib is imported inside each function, as in cvdemo.plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvdemo.explain.attack import magnified
from cvdemo.plots import _plain, _pyplot, save

if TYPE_CHECKING:
    from cvdemo.explain.attack import AttackResult


def _guesses(top: list[dict[str, Any]], k: int = 3) -> str:
    return "\n".join(f"{_plain(g['class'][:28])} {g['prob']:.0%}" for g in top[:k])


def attack_figure(result: AttackResult, path: str | Path) -> Path:
    """Three panels side by side, each titled with the network's top guesses where it has any."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.9))
    eps = f"{result.epsilon * 255:.3g}/255"
    panels = [(result.original, f"original\n{_guesses(result.before)}"),
              (magnified(result.perturbation, result.epsilon),
               f"the noise, magnified {0.5 / max(result.epsilon, 1e-9):.0f}x\n(largest change "
               f"{result.max_change * 255:.3g}/255)\ngrey = none, dark/bright = -/+{eps}"),
              (result.adversarial, f"attacked ({result.method.upper()})\n{_guesses(result.after)}")]
    for ax, (picture, title) in zip(axes, panels):
        ax.imshow(picture, interpolation="nearest" if picture.shape[0] < 64 else "antialiased")
        ax.set_title(title, fontsize=10, loc="left")
        ax.axis("off")
    aim = f"towards '{_plain(str(result.target_name))}'" if result.target is not None else "untargeted"
    verdict = "fooled" if result.success else "not fooled"
    fig.suptitle(f"{result.method.upper()} at epsilon {eps}, {aim}: {verdict}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save(fig, path)


def robustness_figure(curve: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Top-1 against epsilon (in 8-bit pixel steps), one point per epsilon."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    xs = [e * 255 for e in curve["epsilons"]]
    ax.plot(xs, [t * 100 for t in curve["top1"]], marker="o", color="#2563eb")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xticks(xs, [f"{x:.0f}" if x >= 1 or x == 0 else f"{x:.1f}" for x in xs])
    ax.set_xlabel("epsilon (steps of an 8-bit pixel, out of 255)")
    ax.set_ylabel(f"{curve['split']} top-1 (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{curve['method'].upper()} attack on {curve['images']} {curve['split']} images")
    fig.tight_layout()
    return save(fig, path)
