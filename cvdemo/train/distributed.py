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

The batch size is per rank (N ranks step on N x batch_size images), as in DDP's convention; the
learning rate is *not* scaled with it (see `batch_warning`: the run records a warning instead).
Not supported under torchrun (a clear error): gradual unfreezing (DDP fixes the set of trained
parameters when it wraps the model) and --resume.

What keeps the ranks in step (a rank that leaves the loop alone would leave the others waiting in
their next all-reduce until the NCCL timeout):
- stopping: a divergence or a cancel (SIGTERM reaches rank 0 only) is agreed by all ranks at the
  trainer's sync points (`agree_to_stop`), so every rank stops after the same step (early stopping
  already decides on the all-reduced validation figures, the same on every rank);
- failing: an exception that leaves `process_group` on one rank aborts its communicators, and the
  process exits non-zero, which makes torchrun stop the other ranks;
- first-time downloads (data sets, pretrained weights): local rank 0 alone, the others after it
  (`local_main_first`);
- choices made from local facts (does the data set fit in this GPU's free memory?) are agreed
  (`all_agree`), the learning-rate finder runs on rank 0 and its rate is broadcast (`broadcast_float`);
- randomness: model initialisation and the data split are seeded alike on every rank (and DDP copies
  rank 0's weights when it wraps), while dropout and mixup draw from a per-rank seed (`rank_seed`).
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
    # CVDEMO_DIST_BACKEND=gloo lets several ranks share one GPU (NCCL refuses that): slow, for checks such as
    # `make gpu-check` on a one-GPU machine
    backend = os.environ.get("CVDEMO_DIST_BACKEND", "").strip() or ("nccl" if use_cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"CVDEMO_DIST_BACKEND must be nccl or gloo, not {backend[:20]!r}")
    if use_cuda:
        count = torch.cuda.device_count()
        if launch.local_rank >= count and backend == "nccl":
            raise ConfigError(f"LOCAL_RANK {launch.local_rank} has no GPU: this machine has "
                              f"{count}; use --nproc-per-node {count} or fewer")
        torch.cuda.set_device(launch.local_rank % count)
    dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size)
    try:
        yield
    except BaseException:
        # This rank failed alone (out of memory, a full disk, a bug) while the others may be inside a collective
        # waiting for it: tear the communicators down without the orderly shutdown (which can wait on them),
        # and let the exception end the process non-zero; torchrun then stops the other ranks.
        abort()
        raise
    dist.destroy_process_group()


def abort() -> None:
    """Drop this process's communicators at once (NCCL: ncclCommAbort); the orderly destroy for backends
    that cannot abort (gloo, whose peers see the closed connections)."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "nccl" and hasattr(dist.distributed_c10d, "_abort_process_group"):
            dist.distributed_c10d._abort_process_group()
            return
    except Exception:  # noqa: BLE001 (best effort: the process is failing anyway)
        pass
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001
        pass


def local_rank() -> int:
    """This rank's index on its machine (LOCAL_RANK; 0 outside a process group)."""
    if not active():
        return 0
    return int(os.environ.get("LOCAL_RANK", dist.get_rank()))


def barrier() -> None:
    """Wait until every rank arrives (nothing outside a process group)."""
    if not active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextmanager
def local_main_first() -> Iterator[None]:
    """Run the body on local rank 0 first and on the machine's other ranks after it has finished, e.g. to
    download and extract a data set or weights into a shared cache once (the others then find the files).

    Every rank passes the same one barrier, also when the body fails on local rank 0 (the others then try
    for themselves and fail with the same one-sentence error rather than wait). Nothing outside a process group.
    """
    if not active():
        yield
        return
    first = local_rank() == 0
    if not first:
        barrier()
    try:
        yield
    finally:
        if first:
            barrier()


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
    # torch.compile, if asked, comes after this wrapping (job.run_training): compiling the DDP wrapper lets
    # its graph be split at the gradient buckets, so their all-reduces overlap the rest of the backward pass.
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
    """The module inside a DistributedDataParallel wrapper, also one that torch.compile wrapped (the model
    itself otherwise). Evaluation runs it directly: DDP's forward would broadcast buffers, a collective,
    while ranks see different numbers of validation batches."""
    ddp = ddp_module(model)
    return ddp.module if ddp is not None else model


def ddp_module(model: torch.nn.Module) -> Any:
    """The DistributedDataParallel wrapper in `model` (itself, or inside a torch.compile wrapper), or None."""
    from torch.nn.parallel import DistributedDataParallel

    inner = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule keeps the module it compiled
    return inner if isinstance(inner, DistributedDataParallel) else None


def agree_to_stop(loss: torch.Tensor, stop: bool) -> tuple[float, float, bool]:
    """One step's verdict, the same on every rank: (this rank's loss, the worst loss of any rank (NaN if any
    is NaN), whether any rank asked to stop). One small all-reduce and one host sync, at a sync point only."""
    local = loss.detach().reshape(()).double()
    nan = torch.isnan(local)
    worst = torch.where(nan, torch.full_like(local, float("inf")), local)
    t = torch.stack([worst, nan.double(), local.new_tensor(float(stop))])
    mine = local.reshape(1)
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    own, worst_loss, any_nan, any_stop = torch.cat([mine, t]).tolist()
    return own, (float("nan") if any_nan else worst_loss), bool(any_stop)


def all_agree(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on every rank (the flag itself outside a process group)."""
    if not active():
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_float(value: float | None, device: torch.device) -> float:
    """Rank 0's `value` on every rank (the value itself outside a process group; other ranks pass None)."""
    if not active():
        if value is None:
            raise ValueError("a single process must give the value")
        return value
    t = torch.tensor([value if is_main() and value is not None else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def rank_seed(seed: int) -> int:
    """The seed of this rank's own random stream (dropout, mixup, stochastic depth) from the run's `seed`:
    `seed` itself on rank 0 (a single process draws as before), a far-away seed on every other rank, so
    that N ranks do not apply the same dropout masks and mixing draws to their N different batches."""
    rank = rank_and_size()[0]
    return seed + rank * 1_000_000_007


def batch_warning(batch_size: int, lr: float, optimizer: str, accumulate: int = 1) -> str | None:
    """The warning a torchrun run records about its learning rate (None in a single process).

    The learning rate is deliberately left as given rather than scaled with the global batch: the linear
    scaling rule (Goyal et al. 2017) holds for SGD with warm-up but overshoots for Adam/AdamW, and a silent
    change would make a recipe's tuned rate, --lr and the finder's suggestion mean different things with
    different numbers of GPUs. So the rate stays, and the run says what changed and what the rule suggests.
    """
    world = rank_and_size()[1]
    if world == 1:
        return None
    rule = (f"the linear scaling rule suggests --lr {lr * world:.3g}" if optimizer == "sgd" else
            f"for {optimizer}, about --lr {lr * world ** 0.5:.3g} (square-root scaling) is a common start")
    per_step = f"batch size {batch_size}" + (f" x --accumulate {accumulate}" if accumulate > 1 else "")
    return (f"{world} ranks x {per_step} = a global batch of {world * batch_size * accumulate} images per step, "
            f"trained at --lr {lr:.3g} as given (not scaled with the global batch): {rule}, or keep the global "
            f"batch with --batch-size {max(1, batch_size // world)}")
