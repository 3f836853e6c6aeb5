"""Gradient attributions: saliency, integrated gradients and guided backpropagation.

Each method takes the explaining `Session`, a batch `xb` (B, C, H, W) of model inputs and the target
class (None: the predicted one), and returns maps (B, H, W). Its keyword options are the method's
options (`cvdemo.explain.methods` reads them from the signature).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from cvdemo.errors import ModelError
from cvdemo.explain.session import Session, baseline_like, default_batch

# Activations that guided backpropagation rectifies gradients through (gates such as the sigmoid of
# squeeze-excitation are left alone).
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.GELU, nn.Mish,
                      nn.Hardswish, nn.Tanh)


def input_gradients(session: Session, xb: torch.Tensor, target: int | None, chunk: int) -> torch.Tensor:
    """d logit[target] / d input for each row of xb (B, C, H, W), `chunk` rows per backward pass."""
    grads = []
    for lo in range(0, len(xb), chunk):
        xi = xb[lo:lo + chunk].detach().clone().requires_grad_(True)
        logits = session.model(xi)
        score = logits[:, session.resolve(logits, target)].sum()
        (g,) = torch.autograd.grad(score, xi)
        grads.append(g)
    return torch.cat(grads)


def saliency(session: Session, xb: torch.Tensor, target: int | None,
             internal_batch_size: int | None = None) -> torch.Tensor:
    """|d logit / d pixel|, maximum over channels (Simonyan et al. 2014)."""
    return input_gradients(session, xb, target, internal_batch_size or default_batch(xb.device)).abs().amax(dim=1)


def integrated_gradients(session: Session, xb: torch.Tensor, target: int | None, n_steps: int = 32,
                         baseline: float | torch.Tensor = 0.0, internal_batch_size: int | None = None
                         ) -> torch.Tensor:
    """(x - baseline) * the path integral of the gradient, by n_steps-point Gauss-Legendre quadrature;
    summed over channels. At most `internal_batch_size` interpolated images per backward pass."""
    internal_batch_size = internal_batch_size or default_batch(xb.device)
    nodes, weights = np.polynomial.legendre.leggauss(int(n_steps))
    alphas = torch.tensor((nodes + 1) / 2, dtype=xb.dtype, device=xb.device)
    step = torch.tensor(weights / 2, dtype=xb.dtype, device=xb.device)
    maps = []
    for x in xb:
        base = baseline_like(baseline, x)
        diff = x - base
        total = torch.zeros_like(x)
        for lo in range(0, len(alphas), internal_batch_size):
            a = alphas[lo:lo + internal_batch_size].view(-1, 1, 1, 1)
            g = input_gradients(session, base + a * diff, target, internal_batch_size)
            total += (g * step[lo:lo + internal_batch_size].view(-1, 1, 1, 1)).sum(dim=0)
        maps.append((diff * total).sum(dim=0))
    return torch.stack(maps)


@contextmanager
def guided(session: Session) -> Iterator[None]:
    """Only positive gradients pass back through each activation module (guided backpropagation)."""
    modules = [m for m in session.model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]
    if not modules:
        raise ModelError(f"{type(session.model).__name__} has no activation modules (ReLU, Tanh, ...) to guide "
                         "gradients through; use saliency")

    def rectify(module: nn.Module, args: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: g.clamp(min=0))

    with session.hooks([m.register_forward_hook(rectify) for m in modules]):
        yield


def guided_backprop(session: Session, xb: torch.Tensor, target: int | None,
                    internal_batch_size: int | None = None) -> torch.Tensor:
    """Gradients with only positive gradients flowing back through each activation; |.|, max over channels."""
    with guided(session):
        return input_gradients(session, xb, target,
                               internal_batch_size or default_batch(xb.device)).abs().amax(dim=1)
