"""SmoothGrad: any method's map averaged over noisy copies of the image (Smilkov et al. 2017).

A composition, not a method of its own: `cvdemo.explain.methods` hands it the base method by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cvdemo.explain.session import Session


def smoothgrad(session: Session, xb: torch.Tensor, target: int | None, base: Callable[..., torch.Tensor],
               n_samples: int, stdev: float, seed: int, chunk: int, base_options: dict[str, Any]) -> torch.Tensor:
    """`base`'s map (B, H, W) averaged over n_samples copies of each image with Gaussian noise of standard
    deviation stdev x (max - min) of that image, `chunk` noisy copies per call of `base`."""
    gen = torch.Generator().manual_seed(int(seed))
    maps = []
    for x in xb:
        sigma = float(stdev) * float(x.max() - x.min())
        acc = torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
        for lo in range(0, n_samples, chunk):
            b = min(chunk, n_samples - lo)
            noise = torch.randn((b, *x.shape), generator=gen).to(x.device) * sigma
            acc += base(session, x.unsqueeze(0) + noise, target, **base_options).sum(dim=0)
        maps.append(acc / n_samples)
    return torch.stack(maps)
