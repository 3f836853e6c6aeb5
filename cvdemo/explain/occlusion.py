"""Occlusion: the drop in the target's probability when a square of the image is hidden.

Same calling convention as `cvdemo.explain.gradients`: (session, xb (B, C, H, W), target) -> (B, H, W).
"""

from __future__ import annotations

import torch

from cvdemo.explain.session import Session, baseline_like, default_batch


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Window positions covering 0..n-1: every `stride`, plus one flush with the end."""
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def occlusion(session: Session, xb: torch.Tensor, target: int | None, window: int | None = None,
              stride: int | None = None, baseline: float | torch.Tensor = 0.0,
              internal_batch_size: int | None = None) -> torch.Tensor:
    """Drop in the target's probability when a window x window square (all channels) is set to the
    baseline, averaged over the windows covering each pixel; `internal_batch_size` occluded copies
    go through the network per forward pass."""
    internal_batch_size = internal_batch_size or default_batch(xb.device, occlusion=True)
    h, w = xb.shape[-2:]
    win = min(int(window or max(1, min(h, w) // 7)), h, w)
    step = int(stride or max(1, win // 2))
    boxes = [(y, x) for y in window_starts(h, win, step) for x in window_starts(w, win, step)]
    maps = []
    for x in xb:
        base = baseline_like(baseline, x)
        with torch.no_grad():
            logits = session.model(x.unsqueeze(0))
            target = session.resolve(logits, target)
            p0 = torch.softmax(logits.float(), dim=1)[0, target]
            acc = torch.zeros((h, w), dtype=torch.float32, device=x.device)
            count = torch.zeros((h, w), dtype=torch.float32, device=x.device)
            for lo in range(0, len(boxes), internal_batch_size):
                chunk = boxes[lo:lo + internal_batch_size]
                batch = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
                for j, (y0, x0) in enumerate(chunk):
                    batch[j, :, y0:y0 + win, x0:x0 + win] = base[:, y0:y0 + win, x0:x0 + win]
                p = torch.softmax(session.model(batch).float(), dim=1)[:, target]
                for j, (y0, x0) in enumerate(chunk):
                    acc[y0:y0 + win, x0:x0 + win] += p0 - p[j]
                    count[y0:y0 + win, x0:x0 + win] += 1
        maps.append(acc / count.clamp(min=1))
    return torch.stack(maps)
