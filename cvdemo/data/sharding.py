"""Index maths that deals an epoch out to several ranks (pure functions; no process group needed).

    shard_order(torch.arange(10), rank=1, world=4, pad=True)   # tensor([1, 5, 9])
    shard_size(10, rank=1, world=4, pad=True)                  # 3

The loaders in `cvdemo.data.loader` use these to yield one rank's share of each epoch;
`cvdemo.train.distributed` decides when to shard and with which rank.
"""

from __future__ import annotations

import math

import torch

__all__ = ["shard_order", "shard_size"]


def shard_order(order: torch.Tensor, rank: int, world: int, *, pad: bool) -> torch.Tensor:
    """This rank's share of an epoch's order (1-D): order[rank::world]. With `pad`, the order is first
    extended with its own beginning to a multiple of `world`, so every rank gets ceil(n / world)."""
    if world == 1:
        return order
    if pad and len(order) % world:
        total = math.ceil(len(order) / world) * world
        repeats = math.ceil(total / max(len(order), 1))
        order = order.repeat(repeats)[:total]
    return order[rank::world]


def shard_size(n: int, rank: int, world: int, *, pad: bool) -> int:
    """len(shard_order(range(n), rank, world, pad=pad))."""
    if world == 1:
        return n
    if pad:
        return math.ceil(n / world) if n else 0
    return len(range(rank, n, world))
