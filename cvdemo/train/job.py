"""One training run from a RunConfig to a complete run folder.

`run_training` is what `cvdemo train` and the app's background process both call:
load data, build the model, train with the run writer listening, test the best
checkpoint on held-out data, and leave status/summary on disk whatever happens.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError, CvdemoError
from cvdemo.models import get_module
from cvdemo.train import distributed
from cvdemo.train.groups import LayerGroup, apply_freezing, group_table, optimizer_param_groups, plan_groups
from cvdemo.train.optim import build_optimizer, build_scheduler
from cvdemo.train.trainer import Diverged, StopTraining, Trainer, evaluate


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for an absent accelerator is a clear error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CvdemoError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not has_mps:
        raise CvdemoError("--device mps was asked for but Apple's MPS is not available; use --device auto or cpu")
    return torch.device(name)


@dataclass
class Setup:
    """Everything built from a config before the first step."""
    bundle: Any
    model: torch.nn.Module
    spec: Any
    image_size: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    params_total: int
    params_trainable: int
    groups: list[LayerGroup]
    channels_last: bool = False

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        from cvdemo.data import to_model_input

        x = to_model_input(images.to(self.device, non_blocking=True), size=self.image_size,
                           mean=self.mean, std=self.std, channels=self.in_channels)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def checkpoint_meta(self, config: RunConfig) -> dict[str, Any]:
        """What inference needs to rebuild and feed the model from a run folder alone."""
        return {"model": self.spec.name, "num_classes": len(self.bundle.classes),
                "classes": list(self.bundle.classes), "in_channels": self.in_channels,
                "image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "model_kwargs": model_kwargs(config)}


def model_kwargs(config: RunConfig) -> dict[str, Any]:
    return {"zero_init_residual": True} if config.model.zero_init_residual else {}


def load_data(config: RunConfig) -> Any:
    """The DataBundle a run trains on: the same splits every time for the same config."""
    from cvdemo.data import load_dataset
    from cvdemo.models import get_spec

    d = config.data
    image_size = d.image_size or get_spec(config.model.name).input_size
    return load_dataset(d.source, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                        seed=config.train.seed, limit_train=d.limit_train, limit_test=d.limit_test,
                        image_size=image_size, skip_bad=d.skip_bad)


def build_setup(config: RunConfig, load_weights: bool = True) -> Setup:
    """Load the data and build the model (head replaced, groups planned) on the chosen device.

    `load_weights=False` skips downloading/loading pretrained weights (a resumed run loads its own).
    """
    from cvdemo.data import compute_mean_std
    from cvdemo.models import count_parameters, create_model, get_spec

    torch.manual_seed(config.train.seed)
    spec = get_spec(config.model.name)
    image_size = config.data.image_size or spec.input_size
    check_input_size(config, image_size)
    bundle = load_data(config)
    in_channels = bundle.channels if spec.flexible_channels and not config.model.pretrained else 3
    model = create_model(spec.name, len(bundle.classes), pretrained=config.model.pretrained and load_weights,
                         in_channels=in_channels, **model_kwargs(config))
    if config.model.pretrained:
        # Pretrained weights expect the normalisation they were trained with.
        mean, std = tuple(spec.mean), tuple(spec.std)
    else:
        mean, std = compute_mean_std(bundle.train)
        if len(mean) != in_channels:  # grey data into a 3-channel network: same statistics per channel
            mean, std = mean * in_channels, std * in_channels
    groups = plan_groups(model, config)
    apply_freezing(groups, epoch=1)
    device = resolve_device(config.train.device)
    model.to(device)
    if config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    total, trainable = count_parameters(model)
    return Setup(bundle, model, spec, image_size, in_channels, tuple(mean), tuple(std), device, total, trainable,
                 groups, config.train.channels_last)


def check_input_size(config: RunConfig, image_size: int) -> None:
    """ConfigError when the architecture's layers shrink `image_size` images to nothing (e.g. AlexNet at 8 px),
    found by a forward pass on the meta device: no memory, no arithmetic."""
    from cvdemo.errors import ConfigError
    from cvdemo.models import create_model, get_spec

    spec = get_spec(config.model.name)
    try:
        with torch.device("meta"), torch.no_grad():
            model = create_model(spec.name, 2, in_channels=3, **model_kwargs(config)).eval()
            model(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as e:
        text = str(e).lower()
        if "size" in text and any(w in text for w in ("too small", "greater than", "output size")):
            raise ConfigError(f"{spec.name} cannot take {image_size}x{image_size} images (its layers shrink them "
                              f"to nothing): use a larger --image-size, e.g. its default {spec.input_size}") from None
        # anything else the meta device cannot run is left for the real forward pass


class RunWriter:
    """Trainer callback that keeps the run folder current: metrics, status, last.pt and best.pt.

    On each epoch's end the metrics line is appended first, then the checkpoints replaced, so
    last.pt never claims an epoch that metrics.jsonl lacks.
    """

    def __init__(self, run_dir: Path, config: RunConfig, setup: Setup, history: list[dict[str, Any]]):
        self.run_dir, self.config, self.setup = Path(run_dir), config, setup
        self.metric = config.train.best_metric
        self.sign = 1.0 if self.metric == "val_top1" else -1.0  # larger is better after the sign
        scores = [self.sign * r[self.metric] for r in history if r.get(self.metric) == r.get(self.metric)]
        self.best = max(scores, default=-float("inf"))

    def on_train_start(self, trainer: Trainer) -> None:
        runs.write_status(self.run_dir, "running", f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        apply_freezing(self.setup.groups, epoch + 1)

    def on_batch_end(self, trainer: Trainer, info: Any) -> None:
        """About ten points per epoch of training loss and learning rate, for live curves."""
        every = max(1, info.batches // 10)
        if info.loss is not None and ((info.batch + 1) % every == 0 or info.batch == info.batches - 1):
            runs.append_metrics(self.run_dir, {"kind": "step", "step": info.step,
                                               "epoch": info.epoch + (info.batch + 1) / info.batches,
                                               "loss": info.loss, "lr": info.lr, "time": time.time()})

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        runs.append_metrics(self.run_dir, {**record, "time": time.time()})
        meta = self.setup.checkpoint_meta(self.config)
        # setup.model, not trainer.model: a torch.compile wrapper would prefix every key.
        weights = {k: v.detach().cpu() for k, v in self.setup.model.state_dict().items()}
        score = self.sign * record.get(self.metric, float("nan"))
        if score == score and score > self.best:  # NaN-safe
            self.best = score
            runs.save_checkpoint(self.run_dir / "best.pt", {**meta, "state_dict": weights, "epoch": trainer.epoch,
                                                            self.metric: record[self.metric]})
        runs.save_checkpoint(self.run_dir / "last.pt", {
            **meta, "state_dict": weights, "epoch": trainer.epoch, "step": trainer.step,
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None})
        done = trainer.epoch >= trainer.epochs
        runs.write_status(self.run_dir, "running",
                          "testing" if done else f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)


class EarlyStop(StopTraining):
    """The best-model metric stopped improving: the run ends normally and is tested."""


class EarlyStopping:
    """Trainer callback: stop when `metric` has not improved for `patience` epochs."""

    def __init__(self, metric: str, patience: int, history: list[dict[str, Any]]):
        self.metric, self.patience = metric, patience
        self.sign = 1.0 if metric == "val_top1" else -1.0
        self.best, self.best_epoch = -float("inf"), 0
        for r in history:
            self.update(r)

    def update(self, record: dict[str, Any]) -> None:
        score = self.sign * record.get(self.metric, float("nan"))
        if score == score and score > self.best:
            self.best, self.best_epoch = score, record["epoch"]

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.update(record)
        if record["epoch"] - self.best_epoch >= self.patience and trainer.epoch < trainer.epochs:
            raise EarlyStop(f"stopped early after epoch {record['epoch']}: {self.metric} has not improved "
                            f"for {self.patience} epochs (best at epoch {self.best_epoch})")


class CancelOnSignal:
    """Trainer callback: SIGTERM (a cancel button, `kill`) stops training after the current batch.

    The handler only sets a flag; the trainer stops at a safe point, so last.pt stays consistent.
    """

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_train_start(self, trainer: Trainer) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    def on_batch_end(self, trainer: Trainer, info: Any) -> None:
        if self.requested:
            raise StopTraining("cancelled by a signal")

    def on_train_end(self, trainer: Trainer) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def can_cache_features(config: RunConfig, setup: Setup) -> bool:
    """True when training would recompute identical backbone features every epoch."""
    t = config.train
    head_only = all(g.trains_from is None for g in setup.groups[:-1])
    return (t.cache_features and head_only and config.data.augment == "none" and t.mixup == 0 and t.cutmix == 0
            and not t.compile)


@torch.no_grad()
def head_inputs(setup: Setup, images: Any, head: torch.nn.Module, amp: torch.dtype | None,
                batch_size: int = 256) -> torch.Tensor:
    """The frozen model's input to its head for every image, in order: float (N, D) on the device."""
    from cvdemo.data import make_loader

    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().float()))
    was_training = setup.model.training
    setup.model.eval()
    try:
        for x, _ in make_loader(images, batch_size=batch_size, shuffle=False):
            with torch.autocast(setup.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                setup.model(setup.prepare(x))
    finally:
        hook.remove()
        setup.model.train(was_training)
    return torch.cat(captured)


def feature_batches(setup: Setup, images: Any, head: torch.nn.Module, amp: torch.dtype | None,
                    batch_size: int, shuffle: bool, seed: int) -> Any:
    """Batches of (cached head inputs, labels) shuffled per epoch like the image loader."""
    from cvdemo.data.loader import TensorBatches

    return TensorBatches(head_inputs(setup, images, head, amp), images.labels, batch_size=batch_size,
                         shuffle=shuffle, seed=seed)


def training_inputs(config: RunConfig, setup: Setup, run_dir: Path, amp: torch.dtype | None) -> tuple:
    """(model to step, prepare, train loader, val loader): the images through the whole network, or, when
    only the head learns and nothing random touches the images, the head on backbone features computed once."""
    from cvdemo.data import make_loader

    d, t = config.data, config.train
    if can_cache_features(config, setup):
        head = get_module(setup.model, setup.spec.head)
        runs.write_status(run_dir, "running", "computing the frozen backbone's features once")
        train = feature_batches(setup, setup.bundle.train, head, amp, t.batch_size, True, t.seed)
        val = feature_batches(setup, setup.bundle.val, head, amp, max(t.batch_size, 256), False, t.seed)
        return head, (lambda x: x.to(setup.device, non_blocking=True)), train, val
    train = make_loader(setup.bundle.train, batch_size=t.batch_size, shuffle=True, augment=d.augment,
                        seed=t.seed, workers=d.workers, pin_memory=setup.device.type == "cuda",
                        resident=d.device_resident, device=setup.device)
    val = make_loader(setup.bundle.val, batch_size=max(t.batch_size, 256), shuffle=False, workers=d.workers)
    model = torch.compile(setup.model) if t.compile else setup.model
    return model, setup.prepare, train, val


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting: auto means bf16 on CUDA and full fp32 elsewhere."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def run_training(config: RunConfig, run_dir: Path, callbacks: list[Any] | None = None,
                 resume: bool = False) -> dict[str, Any]:
    """Train per `config` into `run_dir` (made by runs.create_run); returns the summary also saved there.

    `resume=True` continues from the run's last.pt at the same epoch, step, optimizer and scheduler
    state (randomness is reseeded per epoch), so the result matches an uninterrupted run.
    A diverged or cancelled run ends normally with that status; input errors are recorded as
    `failed` and re-raised for the caller to show.
    """
    run_dir = Path(run_dir)
    started = time.time()
    # Checked before anything is written: a checkpoint that does not fit leaves the run as it was.
    last = resumable_checkpoint(config, run_dir) if resume else None
    try:
        runs.write_status(run_dir, "running", "loading data and model", pid=os.getpid())
    except OSError as e:
        raise run_folder_error(run_dir, e) or e from None
    summary: dict[str, Any] = {"run": str(run_dir), "config": config.to_dict()}
    try:
        setup = build_setup(config, load_weights=last is None)
        if last is not None:  # before anything reads the weights (the feature cache does)
            from cvdemo.predict import load_weights

            load_weights(setup.model, last["state_dict"], f"last.pt of run {run_dir.name}",
                         f"{config.model.name} with {len(setup.bundle.classes)} classes (the run's data)")
        t = config.train
        table = group_table(setup.groups, t.lr)
        summary.update(data=setup.bundle.summary(), device=str(setup.device), image_size=setup.image_size,
                       params_total=setup.params_total, params_trainable=setup.params_trainable, groups=table)
        amp = amp_dtype(t.precision, setup.device)
        model, prepare, train_loader, val_loader = training_inputs(config, setup, run_dir, amp)
        # under torchrun: DDP, and each rank's share of the batches (a no-op in a single process)
        model, train_loader, val_loader = distributed.prepare(model, train_loader, val_loader, setup.device)
        summary["cached_features"] = can_cache_features(config, setup)
        optimizer = build_optimizer(optimizer_param_groups(setup.groups, t.lr, t.weight_decay,
                                                           t.decay_norm_bias), t)
        steps_per_epoch = -(-len(train_loader) // t.accumulate)
        scheduler = build_scheduler(optimizer, t, steps_per_epoch)
        history: list[dict[str, Any]] = []
        start_epoch = step = 0
        if last is not None:
            try:
                optimizer.load_state_dict(last["optimizer"])
                scheduler.load_state_dict(last["scheduler"])
            except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
                raise CheckpointError(f"the optimizer state in last.pt of run {run_dir.name} does not match the "
                                      f"run's settings ({str(e).splitlines()[0][:100]}): restore its config.json, "
                                      f"or start a new run") from None
            start_epoch, step = last["epoch"], last["step"]
            kept = [m for m in runs.read_metrics(run_dir) if m.get("kind") in ("epoch", "step")
                    and m["epoch"] <= start_epoch]
            runs.rewrite_metrics(run_dir, kept)  # drop the lines of a partly finished epoch
            history = [m for m in kept if m["kind"] == "epoch"]
        trainer = Trainer(model, optimizer, scheduler, train_loader, val_loader, prepare=prepare,
                          device=setup.device, epochs=t.epochs, label_smoothing=t.label_smoothing,
                          start_epoch=start_epoch, step=step, seed=t.seed, mixup=t.mixup, cutmix=t.cutmix,
                          accumulate=t.accumulate, clip_grad_norm=t.clip_grad_norm,
                          amp_dtype=amp, callbacks=[*([RunWriter(run_dir, config, setup, history)]
                                                      if distributed.is_main() else []),  # torchrun: rank 0 writes
                                                    CancelOnSignal(),
                                     *([EarlyStopping(t.best_metric, t.early_stop, history)] if t.early_stop else []),
                                     *(callbacks or [])])
        if last is not None and last.get("scaler") and trainer.scaler is not None:
            trainer.scaler.load_state_dict(last["scaler"])
        message = ""
        try:
            trainer.fit()
        except EarlyStop as e:
            message = f"{e}; "
        history = [m for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]
        summary["test"] = test_best(setup, run_dir, amp)
        best_of = max if t.best_metric == "val_top1" else min
        summary["best_" + t.best_metric] = best_of((r[t.best_metric] for r in history), default=None)
        state, message = "completed", message + f"test top-1 {summary['test']['top1']:.1%}"
    except Diverged as e:
        state, message = "diverged", str(e)
        summary["diverged"] = {"epoch": e.epoch + 1, "step": e.step, "loss": repr(e.loss), "lr": e.lr}
    except (StopTraining, KeyboardInterrupt):
        state, message = "cancelled", "stopped on request; resume it to continue from the last finished epoch"
    except CvdemoError as e:
        state, message = "failed", str(e)
        _finish(run_dir, summary, state, message, started)
        raise
    except torch.OutOfMemoryError:
        t = config.train
        error = CvdemoError(f"the GPU ran out of memory training "
                            f"{config.model.name} at batch size {t.batch_size}: try --batch-size "
                            f"{max(1, t.batch_size // 2)} (or --accumulate 2 to keep the effective batch), "
                            f"or a smaller --image-size")
        _finish(run_dir, summary, "failed", str(error), started)
        raise error from None
    except OSError as e:
        error = run_folder_error(run_dir, e)
        if error is None:  # not the run folder: a bug, with its traceback
            _finish(run_dir, summary, "failed", f"internal error: {type(e).__name__}: {e}", started)
            raise
        _finish(run_dir, summary, "failed", str(error), started)
        raise error from None
    except Exception as e:
        state, message = "failed", f"internal error: {type(e).__name__}: {e}"
        _finish(run_dir, summary, state, message, started)
        raise
    return _finish(run_dir, summary, state, message, started)


def resumable_checkpoint(config: RunConfig, run_dir: Path) -> dict[str, Any]:
    """last.pt of a run to resume, after checking that it was saved by this run's architecture and holds
    the training state (CheckpointError, one sentence, if not)."""
    from cvdemo.predict import check_checkpoint_meta

    last = runs.load_checkpoint(run_dir / "last.pt")
    check_checkpoint_meta(last, f"{run_dir.name}/last.pt")
    if last["model"] != config.model.name or last.get("model_kwargs", {}) != model_kwargs(config):
        raise CheckpointError(f"last.pt of run {run_dir.name} was saved by {last['model']}, but the run's "
                              f"config.json now asks for {config.model.name}{' with other options' if last['model'] == config.model.name else ''}: "
                              f"restore config.json, or start a new run")
    for key in ("epoch", "step"):
        if isinstance(last.get(key), bool) or not isinstance(last.get(key), int) or last[key] < 0:
            raise CheckpointError(f"last.pt of run {run_dir.name} has no training position ('{key}') to resume "
                                  f"from; it was not written by cvdemo or was edited: start a new run")
    if not isinstance(last.get("optimizer"), dict) or "scheduler" not in last:
        raise CheckpointError(f"last.pt of run {run_dir.name} holds no optimizer state to resume from: "
                              f"start a new run")
    return last


def run_folder_error(run_dir: Path, e: OSError) -> CvdemoError | None:
    """An OSError met while writing the run folder as one sentence (None when it is about something else):
    the folder deleted or made read-only while in use, or the disk full."""
    import errno

    inside = any(f is not None and str(run_dir) in str(f) for f in (e.filename, getattr(e, "filename2", None)))
    reason = e.strerror or str(e) or type(e).__name__
    if not run_dir.is_dir():
        return CvdemoError(f"the run folder {run_dir} was deleted while the run was using it: "
                           f"start a new run")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return CvdemoError(f"the disk holding {run_dir} is full ({reason}): free some space, then resume the run "
                           f"(last.pt keeps its last finished epoch)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and inside:
        return CvdemoError(f"the run folder {run_dir} cannot be written ({reason}): make it writable, then "
                           f"resume the run")
    if inside:
        return CvdemoError(f"cannot write to the run folder {run_dir} ({reason}): check the disk, then resume "
                           f"the run")
    return None


def _finish(run_dir: Path, summary: dict[str, Any], state: str, message: str, started: float) -> dict[str, Any]:
    """Record how the run ended; a run folder that cannot be written (deleted, read-only, full) is left as is."""
    summary.update(status=state, message=message, seconds=time.time() - started,
                   epochs=sum(1 for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"))
    try:
        runs.write_json(run_dir / "summary.json", summary)
        runs.write_status(run_dir, state, message)
    except OSError as e:
        if state != "failed":  # the run went well but its result cannot be kept: say so
            raise run_folder_error(run_dir, e) or e from None
    return summary


def test_best(setup: Setup, run_dir: Path, amp: torch.dtype | None = None) -> dict[str, float]:
    """Load best.pt into the model and measure it on the test split (never seen during training)."""
    from cvdemo.data import make_loader

    if not distributed.is_main():  # under torchrun only rank 0 has best.pt and tests; the others report nothing
        return {"loss": float("nan"), "top1": float("nan"), "top2": float("nan"), "top5": float("nan"),
                "macro_f1": float("nan"), "n": 0}
    best = runs.load_checkpoint(run_dir / "best.pt")
    setup.model.load_state_dict(best["state_dict"])
    loader = make_loader(setup.bundle.test, batch_size=256, shuffle=False)
    result = evaluate(setup.model, loader, setup.prepare, setup.device, amp)
    runs.append_metrics(run_dir, {"kind": "test", "split": "test", "epoch": best["epoch"], **result,
                                  "time": time.time()})
    return result


def find_lr(config: RunConfig, **options: Any) -> Any:
    """Run the learning-rate finder on the run's data and model (nothing is saved; the model is thrown away)."""
    from cvdemo.data import make_loader
    from cvdemo.train.lr_finder import lr_find

    setup = build_setup(config)
    t = config.train
    loader = make_loader(setup.bundle.train, batch_size=t.batch_size, shuffle=True, augment=config.data.augment,
                         seed=t.seed, workers=config.data.workers)
    optimizer = build_optimizer(optimizer_param_groups(setup.groups, t.lr, t.weight_decay, t.decay_norm_bias), t)
    return lr_find(setup.model, optimizer, loader, setup.prepare, setup.device,
                   loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing), **options)
