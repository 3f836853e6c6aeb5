"""Which input size suits the data: small photos blown up to a network's default size cost time for nothing.

    advice = input_size_advice("efficientnet_lite0", native=64)
    advice.size, advice.message       # 128, "Your images are 64×64 px; efficientnet_lite0 reads 224×224 ..."

A network's default input size is what its ImageNet weights were trained at (224 px). Photos of 64x64 px
fed at 224 are enlarged 3.5 times, and every pass through the network (the frozen feature pass too)
costs (224/64)^2 = 12 times the pixels the photos hold. Twice the native size keeps most of what
pretrained filters need to see at a fraction of the cost; never below what the layers can take.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvdemo.models.registry import get_spec

__all__ = ["SizeAdvice", "input_size_advice"]

STEP = 32  # suggested sizes are multiples of this: every stride of the usual networks divides it


@dataclass(frozen=True)
class SizeAdvice:
    size: int            # the suggested image size (pixels per side)
    default: int         # the network's default input size
    native: int          # the data's own size (the longer side)
    cost_ratio: float    # pixels per pass at the default / at the suggestion: how much cheaper each pass gets
    message: str


def input_size_advice(model: str, native: int | None, minimum: int | None = None) -> SizeAdvice | None:
    """A smaller input size for `model` when the data's images (`native` px, the longer side; None: mixed or
    unknown sizes) are much smaller than the network's default; None when the default suits them. `minimum`:
    the smallest size the network's layers take (default: a quarter of its default size, at least 32)."""
    default = get_spec(model).input_size
    if not native or native <= 0 or native * 1.5 >= default:
        return None
    floor = minimum if minimum is not None else max(32, default // 4)
    size = min(default, max(floor, -(-2 * native // STEP) * STEP))
    if size >= default:
        return None
    ratio = (default / size) ** 2
    message = (f"Your images are {native}×{native} px; {model} reads {default}×{default} by default, so each "
               f"one is enlarged {default / native:.1f}× and every pass costs {(default / native) ** 2:.0f}× the "
               f"pixels the images hold. An image size of {size} enlarges them {size / native:.1f}× and makes "
               f"every pass about {ratio:.1f}× cheaper.")
    return SizeAdvice(size, default, native, ratio, message)
