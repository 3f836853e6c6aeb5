"""Several processes, one run: `torchrun --nproc-per-node N -m cvdemo train ...`.

torchrun starts N copies of `cvdemo train` and tells each who it is through environment
variables (WORLD_SIZE, RANK, LOCAL_RANK, and where to meet: MASTER_ADDR, MASTER_PORT). Each
copy (a rank) then

- joins one process group: NCCL on CUDA GPUs (rank r uses GPU LOCAL_RANK), gloo on the CPU;
- trains the same model wrapped in DistributedDataParallel, which averages the gradients of
  every step across ranks, so the weights stay identical everywhere;
- reads its own share of each epoch: the epoch's shuffled order, the same on every rank, dealt
  out like cards (every N-th sample from the rank's number), so the ranks together see the
  epoch once, exactly the samples (and augmentation seeds) a single process would see;
- adds up its metric sums and counts with the others (all_reduce) before dividing, so the
  epoch's loss and accuracy are those of all the data.

Only rank 0 writes the run folder and prints; the other ranks train in silence, their run
records going to a private scratch folder that is deleted at the end. With no WORLD_SIZE
(or WORLD_SIZE=1) nothing here does anything: the functions return their input.

The batch size is per rank (N ranks step on N x batch_size images), as in DDP's convention.
Not supported under torchrun (a clear error): gradual unfreezing (DDP fixes the set of trained
parameters when it wraps the model) and --resume.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from cvdemo.device import resolve_device
from cvdemo.errors import ConfigError


@dataclass(frozen=True)
class Launch:
    """Who this process is among the ones torchrun started."""

    rank: int         # 0 .. world_size - 1, over all machines
    local_rank: int   # index on this machine: the GPU this rank uses
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(environ: dict[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in the environment, or None for a single process."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank, local = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", env.get("RANK", "0")))
    except ValueError:
        raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} is outside 0..{world - 1} (WORLD_SIZE {world})")
    return Launch(rank, local, world)


def active() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def is_main() -> bool:
    return rank_and_size()[0] == 0


@contextmanager
def process_group(launch: Launch | None, device: str) -> Iterator[None]:
    """Join the ranks' process group for the duration (nothing to do for a single process).

    `device` is the run's device setting: NCCL when it resolves to CUDA (this rank then uses GPU
    LOCAL_RANK as its "cuda" device), gloo otherwise.
    """
    if launch is None:
        yield
        return
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {launch.local_rank} has no GPU: this machine has "
                              f"{torch.cuda.device_count()}; use --nproc-per-node {torch.cuda.device_count()} or fewer")
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=launch.rank, world_size=launch.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_config(config: Any) -> None:
    """ConfigError for the settings that cannot run under torchrun."""
    if config.train.unfreeze_at:
        raise ConfigError("gradual unfreezing (--unfreeze-at) cannot run under torchrun: DistributedDataParallel "
                          "fixes the trained parameters when it wraps the model; train in one process instead")


def prepare(model: torch.nn.Module, train_loader: Any, val_loader: Any, device: torch.device
            ) -> tuple[torch.nn.Module, Any, Any]:
    """(model, train loader, val loader) for this rank: the model wrapped in DistributedDataParallel, the
    training batches sharded with padding (every rank steps the same number of times, which DDP needs),
    the validation batches sharded without (the sums are added up across ranks afterwards).
    Returns its arguments unchanged outside a process group."""
    if not active():
        return model, train_loader, val_loader
    from torch.nn.parallel import DistributedDataParallel

    rank, world = rank_and_size()
    shard(train_loader, rank, world, pad=True)
    if val_loader is not None:
        shard(val_loader, rank, world, pad=False)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids), train_loader, val_loader


def shard(loader: Any, rank: int, world: int, *, pad: bool) -> None:
    if not hasattr(loader, "shard"):
        raise TypeError(f"{type(loader).__name__} cannot be split across ranks (it has no shard method)")
    loader.shard(rank, world, pad=pad)


def reduce_sums(values: Sequence[float | torch.Tensor], device: torch.device) -> list[float]:
    """Each value summed over all ranks, as Python floats (the values themselves outside a process group).
    One collective, float64, on `device` (NCCL needs GPU tensors)."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    if active():
        dist.all_reduce(t)
    return t.tolist()


def reduce_tensor_(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (nothing outside a process group); returns it."""
    if active():
        dist.all_reduce(t)
    return t


def max_int(value: int, device: torch.device) -> int:
    """The largest of each rank's `value`."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def per_rank(value: int, device: torch.device) -> list[int]:
    """Every rank's `value`, in rank order ([value] for a single process)."""
    rank, world = rank_and_size()
    t = torch.zeros(world, dtype=torch.int64, device=device)
    t[rank] = value
    return [int(v) for v in reduce_tensor_(t).tolist()]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model
