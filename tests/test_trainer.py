"""The training loop on synthetic data: it learns, it reports, it stops and it diverges as promised."""

import math

import pytest
import torch
from torch import nn

from cvdemo.config import TrainConfig
from cvdemo.train import Diverged, StopTraining, Trainer, evaluate
from cvdemo.train.optim import build_optimizer, build_scheduler, lr_factor


def blobs(n=256, classes=4, seed=0):
    """Separable 'images': each class is a different constant brightness pattern plus noise, as uint8 (N,1,4,4)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.linspace(30, 225, classes)
    x = centres[labels][:, None, None, None] + torch.randn(n, 1, 4, 4, generator=g) * 8
    return x.clamp(0, 255).to(torch.uint8), labels


def batches(x, y, size=32):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def prepare(x):
    return x.float() / 255


def make(lr=0.05, epochs=5, callbacks=(), optimizer="sgd"):
    torch.manual_seed(0)
    x, y = blobs()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    cfg = TrainConfig(lr=lr, epochs=epochs, optimizer=optimizer, schedule="constant")
    opt = build_optimizer(model.parameters(), cfg)
    train = batches(x, y)
    sched = build_scheduler(opt, cfg, len(train))
    return Trainer(model, opt, sched, train, batches(*blobs(seed=1)), prepare=prepare, device=torch.device("cpu"),
                   epochs=epochs, callbacks=callbacks)


def test_trainer_learns_and_records_each_epoch():
    trainer = make(lr=0.5, epochs=8)
    history = trainer.fit()
    assert [r["epoch"] for r in history] == list(range(1, 9))
    assert history[-1]["val_top1"] >= 0.95
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for r in history:
        assert 0 <= r["val_top1"] <= r["val_top5"] <= 1
        assert r["images_per_s"] > 0


def test_events_fire_in_order_and_stop_training_ends_early():
    seen = []

    class Recorder:
        def on_train_start(self, t): seen.append("start")
        def on_epoch_start(self, t, e): seen.append(f"epoch{e}")
        def on_batch_end(self, t, info):
            seen.append("batch")
            if info.epoch == 1 and info.batch == 2:
                raise StopTraining
        def on_train_end(self, t): seen.append("end")

    trainer = make(callbacks=[Recorder()])
    with pytest.raises(StopTraining):
        trainer.fit()
    assert seen[:2] == ["start", "epoch0"]
    assert seen.count("batch") == 8 + 3
    assert seen[-1] == "end"
    assert trainer.epoch == 1


def test_huge_learning_rate_is_reported_as_divergence_with_the_step():
    trainer = make(lr=1e6, epochs=3)
    with pytest.raises(Diverged) as err:
        trainer.fit()
    assert err.value.step >= 1
    assert "learning rate" in str(err.value) and "too high" in str(err.value)


def test_evaluate_topk_on_known_logits():
    class Fixed(nn.Module):
        def forward(self, x):
            return x

    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5.0, 4, 3, 2, 1], [-1.0, 0, 0, 0, 1, 5.0]])
    labels = torch.tensor([0, 2, 0])
    out = evaluate(Fixed(), [(logits, labels)], lambda x: x, torch.device("cpu"))
    assert out["top1"] == pytest.approx(1 / 3)
    assert out["top5"] == pytest.approx(2 / 3)  # label 0 in row 3 has the lowest logit, 6th place
    expected = nn.functional.cross_entropy(logits, labels).item()
    assert out["loss"] == pytest.approx(expected)


def test_frozen_batchnorm_keeps_its_statistics():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(16)
    model = nn.Sequential(nn.Flatten(), bn, nn.Linear(16, 4))
    for p in bn.parameters():
        p.requires_grad_(False)
    x, y = blobs()
    cfg = TrainConfig(lr=0.1, epochs=1, optimizer="sgd", schedule="constant")
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    before = bn.running_mean.clone()
    Trainer(model, opt, None, batches(x, y), None, prepare=prepare, device=torch.device("cpu"), epochs=1).fit()
    assert torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("schedule, extra", [("constant", {}), ("cosine", {}), ("step", {"step_size": 2}),
                                             ("multistep", {"milestones": (2, 4)})])
def test_schedules_follow_their_formula(schedule, extra):
    cfg = TrainConfig(epochs=6, schedule=schedule, gamma=0.5, **extra)
    f = [lr_factor(cfg, s, steps_per_epoch=10) for s in range(60)]
    if schedule == "constant":
        assert set(f) == {1.0}
    elif schedule == "cosine":
        assert f[0] == 1.0 and f[-1] < 0.01 and all(a >= b for a, b in zip(f, f[1:]))
    elif schedule == "step":
        assert (f[0], f[19], f[20], f[40]) == (1.0, 1.0, 0.5, 0.25)
    else:
        assert (f[19], f[20], f[39], f[40], f[59]) == (1.0, 0.5, 0.5, 0.25, 0.25)


def test_warmup_rises_linearly_then_schedule_applies():
    cfg = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1)
    f = [lr_factor(cfg, s, steps_per_epoch=10) for s in range(100)]
    assert f[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert f[10] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_onecycle_peaks_at_the_chosen_rate():
    model = nn.Linear(2, 2)
    cfg = TrainConfig(epochs=4, schedule="onecycle", lr=0.2, optimizer="sgd")
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=25)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.2, rel=0.05)
    assert lrs[0] < 0.02 and lrs[-1] < 0.001


def test_fully_frozen_blocks_run_in_inference_mode():
    """A frozen block's stochastic parts (dropout, stochastic depth) are off; trainable ones stay on."""
    modes = {}

    class Block(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.linear = name, nn.Linear(16, 16)

        def forward(self, x):
            modes[self.name] = self.training
            return self.linear(x)

    model = nn.Sequential(nn.Flatten(), Block("frozen"), Block("trainable"), nn.Linear(16, 4))
    for p in model[1].parameters():
        p.requires_grad_(False)
    x, y = blobs(64)
    cfg = TrainConfig(lr=0.1, epochs=1, optimizer="sgd", schedule="constant")
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    Trainer(model, opt, None, batches(x, y), None, prepare=prepare, device=torch.device("cpu"), epochs=1).fit()
    assert modes == {"frozen": False, "trainable": True}
