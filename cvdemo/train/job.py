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
from cvdemo.errors import CvdemoError
from cvdemo.train.optim import build_optimizer, build_scheduler, freeze
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

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        from cvdemo.data import to_model_input

        return to_model_input(images.to(self.device, non_blocking=True), size=self.image_size,
                              mean=self.mean, std=self.std, channels=self.in_channels)

    def checkpoint_meta(self, config: RunConfig) -> dict[str, Any]:
        """What inference needs to rebuild and feed the model from a run folder alone."""
        return {"model": self.spec.name, "num_classes": len(self.bundle.classes),
                "classes": list(self.bundle.classes), "in_channels": self.in_channels,
                "image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "model_kwargs": model_kwargs(config)}


def model_kwargs(config: RunConfig) -> dict[str, Any]:
    return {"zero_init_residual": True} if config.model.zero_init_residual else {}


def build_setup(config: RunConfig) -> Setup:
    """Load the data and build the model (heads replaced, backbone frozen if asked) on the chosen device."""
    from cvdemo.data import compute_mean_std, load_dataset
    from cvdemo.models import count_parameters, create_model, get_spec, group_parameters

    torch.manual_seed(config.train.seed)
    spec = get_spec(config.model.name)
    d = config.data
    image_size = d.image_size or spec.input_size
    bundle = load_dataset(d.source, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                          seed=config.train.seed, limit_train=d.limit_train, limit_test=d.limit_test,
                          image_size=image_size, skip_bad=d.skip_bad)
    in_channels = bundle.channels if spec.flexible_channels and not config.model.pretrained else 3
    model = create_model(spec.name, len(bundle.classes), pretrained=config.model.pretrained,
                         in_channels=in_channels, **model_kwargs(config))
    if config.model.pretrained:
        # Pretrained weights expect the normalisation they were trained with.
        mean, std = tuple(spec.mean), tuple(spec.std)
    else:
        mean, std = compute_mean_std(bundle.train)
        if len(mean) != in_channels:  # grey data into a 3-channel network: same statistics per channel
            mean, std = mean * in_channels, std * in_channels
    if config.model.freeze == "backbone":
        groups = group_parameters(model, spec)
        freeze(p for _, params in groups[:-1] for p in params)
    device = resolve_device(config.train.device)
    model.to(device)
    total, trainable = count_parameters(model)
    return Setup(bundle, model, spec, image_size, in_channels, tuple(mean), tuple(std), device, total, trainable)


class RunWriter:
    """Trainer callback that keeps the run folder current: metrics, status, last.pt and best.pt."""

    def __init__(self, run_dir: Path, config: RunConfig, setup: Setup):
        self.run_dir, self.config, self.setup = Path(run_dir), config, setup
        self.best_top1 = -1.0

    def on_train_start(self, trainer: Trainer) -> None:
        runs.write_status(self.run_dir, "running", f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        runs.append_metrics(self.run_dir, {**record, "time": time.time()})
        meta = self.setup.checkpoint_meta(self.config)
        weights = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        top1 = record.get("val_top1", float("nan"))
        if top1 == top1 and top1 > self.best_top1:  # NaN-safe
            self.best_top1 = top1
            runs.save_checkpoint(self.run_dir / "best.pt", {**meta, "state_dict": weights,
                                                            "epoch": trainer.epoch, "val_top1": top1})
        runs.save_checkpoint(self.run_dir / "last.pt", {
            **meta, "state_dict": weights, "epoch": trainer.epoch, "step": trainer.step,
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None})
        done = trainer.epoch >= trainer.epochs
        runs.write_status(self.run_dir, "running",
                          "testing" if done else f"epoch {trainer.epoch + 1} of {trainer.epochs}",
                          epoch=trainer.epoch, epochs=trainer.epochs)


def run_training(config: RunConfig, run_dir: Path, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train per `config` into `run_dir` (made by runs.create_run); returns the summary also saved there.

    A diverged or cancelled run ends normally with that status; input errors are recorded as `failed`
    and re-raised for the caller to show.
    """
    run_dir = Path(run_dir)
    started = time.time()
    runs.write_status(run_dir, "running", "loading data and model", pid=os.getpid())
    summary: dict[str, Any] = {"run": str(run_dir), "config": config.to_dict()}
    try:
        setup = build_setup(config)
        summary.update(data=setup.bundle.summary(), device=str(setup.device), image_size=setup.image_size,
                       params_total=setup.params_total, params_trainable=setup.params_trainable)
        from cvdemo.data import make_loader

        d, t = config.data, config.train
        train_loader = make_loader(setup.bundle.train, batch_size=t.batch_size, shuffle=True, augment=d.augment,
                                   seed=t.seed, workers=d.workers, pin_memory=setup.device.type == "cuda")
        val_loader = make_loader(setup.bundle.val, batch_size=max(t.batch_size, 256), shuffle=False,
                                 workers=d.workers)
        trainable = [p for p in setup.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(trainable, t)
        scheduler = build_scheduler(optimizer, t, len(train_loader))
        trainer = Trainer(setup.model, optimizer, scheduler, train_loader, val_loader, prepare=setup.prepare,
                          device=setup.device, epochs=t.epochs, label_smoothing=t.label_smoothing,
                          callbacks=[RunWriter(run_dir, config, setup), *(callbacks or [])])
        trainer.fit()
        summary["test"] = test_best(setup, run_dir)
        summary["val_top1_best"] = max((r["val_top1"] for r in trainer.history), default=None)
        state, message = "completed", f"test top-1 {summary['test']['top1']:.1%}"
    except Diverged as e:
        state, message = "diverged", str(e)
        summary["diverged"] = {"epoch": e.epoch + 1, "step": e.step, "loss": repr(e.loss), "lr": e.lr}
    except (StopTraining, KeyboardInterrupt):
        state, message = "cancelled", "stopped on request"
    except CvdemoError as e:
        state, message = "failed", str(e)
        _finish(run_dir, summary, state, message, started)
        raise
    except Exception as e:
        state, message = "failed", f"internal error: {type(e).__name__}: {e}"
        _finish(run_dir, summary, state, message, started)
        raise
    return _finish(run_dir, summary, state, message, started)


def _finish(run_dir: Path, summary: dict[str, Any], state: str, message: str, started: float) -> dict[str, Any]:
    summary.update(status=state, message=message, seconds=time.time() - started,
                   epochs=sum(1 for m in runs.read_metrics(run_dir) if m.get("kind") == "epoch"))
    runs.write_json(run_dir / "summary.json", summary)
    runs.write_status(run_dir, state, message)
    return summary


def test_best(setup: Setup, run_dir: Path) -> dict[str, float]:
    """Load best.pt into the model and measure it on the test split (never seen during training)."""
    from cvdemo.data import make_loader

    best = runs.load_checkpoint(run_dir / "best.pt")
    setup.model.load_state_dict(best["state_dict"])
    loader = make_loader(setup.bundle.test, batch_size=256, shuffle=False)
    result = evaluate(setup.model, loader, setup.prepare, setup.device)
    runs.append_metrics(run_dir, {"kind": "test", "split": "test", "epoch": best["epoch"] + 1, **result,
                                  "time": time.time()})
    return result
