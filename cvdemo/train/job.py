"""One training run from a RunConfig to a complete run folder.

`run_training` is what `cvdemo train` and the app's background process both call:
load data, build the model, train with the run writer listening, test the best
checkpoint on held-out data, and leave status/summary on disk whatever happens.
What it builds lives beside it: `setup` (data, model, device), `callbacks` (run
writer, early stopping, cancel on signal), `feature_cache` (the frozen-backbone shortcut).
"""

from __future__ import annotations

import errno
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from cvdemo import runs
from cvdemo.checkpoint import check_checkpoint_meta, load_checkpoint, load_weights
from cvdemo.config import RunConfig
from cvdemo.data import make_loader
from cvdemo.data.loader import resident_device
from cvdemo.device import amp_dtype, eval_batch_size, memory_phase, out_of_memory_message
from cvdemo.errors import CheckpointError, CvdemoError
from cvdemo.models import get_module
from cvdemo.progress import listening, phase, status_listener
from cvdemo.train import distributed
from cvdemo.train.callbacks import CancelOnSignal, EarlyStop, EarlyStopping, RunWriter
from cvdemo.train.dynamics import Dynamics
from cvdemo.train.feature_cache import (
    can_cache_features,
    feature_batches,
    features_stored,
    quick_bundle,
    remember_bundle,
)
from cvdemo.train.groups import group_table, optimizer_param_groups
from cvdemo.train.lr_finder import lr_find
from cvdemo.train.optim import build_optimizer, build_scheduler
from cvdemo.train.setup import Setup, build_setup, load_data, model_kwargs
from cvdemo.train.trainer import Diverged, StopTraining, Trainer, evaluate


def training_inputs(config: RunConfig, setup: Setup, run_dir: Path, amp: torch.dtype | None) -> tuple:
    """(model to step, prepare, train loader, val loader): the images through the whole network, or, when
    only the head learns and nothing random touches the images, the head on backbone features computed once."""
    d, t = config.data, config.train
    eval_batch = eval_batch_size(t.batch_size, setup.device)  # follows --batch-size (out-of-memory advice)
    if can_cache_features(config, setup):
        head = get_module(setup.model, setup.spec.head)
        runs.write_status(run_dir, "running", "computing the frozen backbone's features once")
        total, start = len(setup.bundle.train) + len(setup.bundle.val), time.perf_counter()
        with memory_phase("the frozen backbone's feature cache"), \
                phase("features", "computing the frozen backbone's features", total) as meter:
            cached_train = feature_batches(setup, setup.bundle.train, head, amp, t.batch_size, True, t.seed,
                                           cache_batch=eval_batch, meter=meter, runs_root=run_dir.parent)
            cached_val = feature_batches(setup, setup.bundle.val, head, amp, eval_batch, False, t.seed,
                                         cache_batch=eval_batch, meter=meter, runs_root=run_dir.parent)
        remember_bundle(config, setup.bundle, run_dir.parent)  # the next run on these files need not decode them
        # what the one pass cost (computed, or read back from the store): `cvdemo bench frozen-folder` reads it
        runs.append_metrics(run_dir, {"kind": "features", "images": total, "seconds": time.perf_counter() - start,
                                      "time": time.time()})
        return head, (lambda x: x.to(setup.device, non_blocking=True)), cached_train, cached_val
    cuda = setup.device.type == "cuda"
    train_resident, val_resident = agreed_resident(config, setup)
    train = make_loader(setup.bundle.train, batch_size=t.batch_size, shuffle=True, augment=d.augment,
                        seed=t.seed, workers=d.workers, pin_memory=cuda,
                        resident=train_resident, device=setup.device)
    # validated every epoch: kept on the GPU like the training set when it fits ("auto"), else pinned
    val = make_loader(setup.bundle.val, batch_size=eval_batch, shuffle=False, workers=d.workers, pin_memory=cuda,
                      resident=val_resident, device=setup.device)
    # --compile is applied by run_training after distributed.prepare (DDP first, then compile)
    return setup.model, setup.prepare, train, val


def agreed_resident(config: RunConfig, setup: Setup) -> tuple[str, str]:
    """The device-resident setting ("auto", "on", "off") for the training and the validation loader. Under
    torchrun "auto" is decided here, the same on every rank: each rank measures its own GPU's free memory,
    and the sets stay resident only where they fit on all (one rank streaming would slow every step, and
    draw other crops and flips than the rest)."""
    d = config.data
    if d.device_resident != "auto" or not distributed.active():
        return d.device_resident, d.device_resident
    train_fits = distributed.all_agree(
        resident_device(setup.bundle.train, d.augment, "auto", setup.device) is not None, setup.device)
    val_fits = distributed.all_agree(
        resident_device(setup.bundle.val, "none", "auto", setup.device) is not None, setup.device)
    return ("on" if train_fits else "off"), ("on" if val_fits else "off")


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
    # every long phase inside (feature cache, validation, test) is added to status.json as it goes
    # (under torchrun the other ranks, which write no run folder, report to nobody)
    main = distributed.is_main()
    with listening(status_listener(run_dir) if main else None, replace=not main):
        return _run_training(config, run_dir, callbacks, last, summary, started)


def _run_training(config: RunConfig, run_dir: Path, callbacks: list[Any] | None, last: dict[str, Any] | None,
                  summary: dict[str, Any], started: float) -> dict[str, Any]:
    try:
        t = config.train
        # a frozen run on files whose features an earlier run stored: the images are not even decoded
        quick = quick_bundle(config, run_dir.parent) if last is None else None
        setup = build_setup(config, load_weights=last is None, bundle=quick)
        amp = amp_dtype(t.precision, setup.device)
        if quick is not None and not (can_cache_features(config, setup) and features_stored(setup, amp,
                                                                                             run_dir.parent)):
            setup.bundle = load_data(config)  # some are missing: decode after all (pretrained: nothing else changes)
        if last is not None:  # before anything reads the weights (the feature cache does)
            load_weights(setup.model, last["state_dict"], f"last.pt of run {run_dir.name}",
                         f"{config.model.name} with {len(setup.bundle.classes)} classes (the run's data)")
        table = group_table(setup.groups, t.lr)
        summary.update(data=setup.bundle.summary(), device=str(setup.device), image_size=setup.image_size,
                       params_total=setup.params_total, params_trainable=setup.params_trainable, groups=table)
        model, prepare, train_loader, val_loader = training_inputs(config, setup, run_dir, amp)
        # under torchrun: DDP, and each rank's share of the batches (a no-op in a single process)
        model, train_loader, val_loader = distributed.prepare(model, train_loader, val_loader, setup.device)
        if t.compile:  # after DDP's wrapping, so that the compiled graph can overlap DDP's gradient all-reduces
            model = torch.compile(model)
        warning = distributed.batch_warning(t.batch_size, t.lr, t.optimizer, t.accumulate)
        if warning is not None:
            summary["warnings"] = [*summary.get("warnings", []), warning]
            if distributed.is_main():
                warnings.warn(warning, stacklevel=2)
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
            # drop the lines of a partly finished epoch (and a test pass, done again at the end); keep the rest,
            # the gradient records of finished epochs and the feature pass's timing included
            kept = [m for m in runs.read_metrics(run_dir) if m.get("kind") != "test"
                    and not (m.get("kind") in ("epoch", "step", "dynamics") and m.get("epoch", 0) > start_epoch)]
            runs.rewrite_metrics(run_dir, kept)
            history = [m for m in kept if m["kind"] == "epoch"]
        trainer = Trainer(model, optimizer, scheduler, train_loader, val_loader, prepare=prepare,
                          device=setup.device, epochs=t.epochs, label_smoothing=t.label_smoothing,
                          head_only=summary["cached_features"],
                          start_epoch=start_epoch, step=step, seed=t.seed, mixup=t.mixup, cutmix=t.cutmix,
                          accumulate=t.accumulate, clip_grad_norm=t.clip_grad_norm,
                          amp_dtype=amp, callbacks=[*([RunWriter(run_dir, config, setup, history), Dynamics(run_dir)]
                                                      if distributed.is_main() else []),  # torchrun: rank 0 writes
                                                    CancelOnSignal(),
                                     *([EarlyStopping(t.best_metric, t.early_stop, history)] if t.early_stop else []),
                                     *(callbacks or [])])
        if last is not None and last.get("scaler") and trainer.scaler is not None:
            trainer.scaler.load_state_dict(last["scaler"])
        message = ""
        try:
            with memory_phase("training"):  # validation inside tags its own errors
                trainer.fit()
        except EarlyStop as e:
            message = f"{e}; "
        history = [m for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"]
        summary["test"] = test_best(setup, run_dir, amp, batch_size=eval_batch_size(t.batch_size, setup.device),
                                    head_only=summary["cached_features"])
        best_of = max if t.best_metric == "val_top1" else min
        summary["best_" + t.best_metric] = best_of((r[t.best_metric] for r in history), default=None)
        state, message = "completed", message + f"test top-1 {summary['test']['top1']:.1%}"
    except Diverged as e:
        state, message = "diverged", str(e)
        summary["diverged"] = {"epoch": e.epoch + 1, "step": e.step, "loss": repr(e.loss), "lr": e.lr}
        if distributed.is_main():  # the point where it blew up ends the curve (NaN/inf as null: JSON has neither)
            runs.append_metrics(run_dir, {"kind": "step", "step": e.step, "epoch": e.step / max(steps_per_epoch, 1),
                                          "loss": e.loss if math.isfinite(e.loss) else None, "lr": e.lr,
                                          "diverged": True, "time": time.time()})
    except (StopTraining, KeyboardInterrupt):
        state, message = "cancelled", "stopped on request; resume it to continue from the last finished epoch"
    except CvdemoError as e:
        state, message = "failed", str(e)
        _finish(run_dir, summary, state, message, started)
        raise
    except torch.OutOfMemoryError as e:
        oom = CvdemoError(out_of_memory_message(e, config.model.name, config.train.batch_size))
        _finish(run_dir, summary, "failed", str(oom), started)
        raise oom from None
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
    last = load_checkpoint(run_dir / "last.pt")
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


def test_best(setup: Setup, run_dir: Path, amp: torch.dtype | None = None, batch_size: int = 256,
              head_only: bool = False) -> dict[str, float]:
    """Load best.pt into the model and measure it on the test split (never seen during training), in batches
    of `batch_size` (the run's `eval_batch_size`). `head_only` (a frozen-backbone run on cached features): the
    head runs on the backbone's test features, read from the feature store when an earlier run on the same
    data and backbone kept them, else computed here and kept; the logits are the whole network's either way."""
    if not distributed.is_main():  # under torchrun only rank 0 has best.pt and tests; the others report nothing
        return {"loss": float("nan"), "top1": float("nan"), "top2": float("nan"), "top5": float("nan"),
                "macro_f1": float("nan"), "n": 0}
    best = load_checkpoint(run_dir / "best.pt")
    setup.model.load_state_dict(best["state_dict"])
    with memory_phase("the test pass"), \
            phase("test", "testing the best checkpoint", len(setup.bundle.test)) as meter:
        if head_only:
            head = get_module(setup.model, setup.spec.head)
            features = feature_batches(setup, setup.bundle.test, head, amp, batch_size, False, 0,
                                       cache_batch=batch_size, meter=meter, runs_root=run_dir.parent)
            result = evaluate(head, features, lambda x: x.to(setup.device, non_blocking=True), setup.device, amp)
        else:
            loader = make_loader(setup.bundle.test, batch_size=batch_size, shuffle=False,
                                 pin_memory=setup.device.type == "cuda")
            result = evaluate(setup.model, loader, setup.prepare, setup.device, amp, meter=meter)
    runs.append_metrics(run_dir, {"kind": "test", "split": "test", "epoch": best["epoch"], **result,
                                  "time": time.time()})
    return result


def find_lr(config: RunConfig, **options: Any) -> Any:
    """Run the learning-rate finder on the run's data and model (nothing is saved; the model is thrown away).

    Inside a torchrun process group every rank builds the setup (its downloads are shared), then rank 0 alone
    sweeps, on its own device, and the other ranks get None: pass the rate on with distributed.broadcast_float.
    """
    setup = build_setup(config)
    if not distributed.is_main():
        return None
    t = config.train
    loader = make_loader(setup.bundle.train, batch_size=t.batch_size, shuffle=True, augment=config.data.augment,
                         seed=t.seed, workers=config.data.workers)
    optimizer = build_optimizer(optimizer_param_groups(setup.groups, t.lr, t.weight_decay, t.decay_norm_bias), t)
    return lr_find(setup.model, optimizer, loader, setup.prepare, setup.device,
                   loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing), **options)
