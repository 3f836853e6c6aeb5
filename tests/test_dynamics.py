"""Training dynamics (issue 14, item 5): per layer group gradient norm, weight norm, update/weight ratio and
the share of dead ReLU units on a fixed batch, recorded every N steps during every run; the plain deep
network's gradients vanish, the residual one's do not."""

import math

import pytest
import torch
from torch import nn

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.train import Trainer
from cvdemo.train.dynamics import Dynamics, relu_groups
from cvdemo.train.job import run_training

GROUPS = ["stem", "stage1", "stage2", "stage3", "head"]


def train_briefly(tmp_path, model: str) -> tuple[list[dict], list[dict]]:
    """Ten SGD steps of `model` on 320 digits; (every step's record, the run folder's dynamics records)."""
    config = RunConfig.from_dict({"data": {"source": "digits", "image_size": 8, "limit_train": 320, "limit_test": 100},
                                  "model": {"name": model},
                                  "train": {"epochs": 1, "batch_size": 32, "optimizer": "sgd", "lr": 0.05,
                                            "schedule": "constant"}})
    run_dir = runs.create_run(tmp_path, config)
    every_step = Dynamics(every=1)
    summary = run_training(config, run_dir, callbacks=[every_step])
    assert summary["status"] == "completed", summary
    return every_step.records, [m for m in runs.read_metrics(run_dir) if m.get("kind") == "dynamics"]


def first_to_last(records: list[dict]) -> float:
    """The first group's gradient norm relative to the last's, averaged over the records."""
    return sum(r["groups"]["stem"]["grad_norm"] / r["groups"]["head"]["grad_norm"] for r in records) / len(records)


@pytest.mark.slow
def test_gradients_vanish_in_the_plain_deep_network_and_not_in_the_residual_one(tmp_path):
    plain, plain_saved = train_briefly(tmp_path, "deep_plain")
    residual, residual_saved = train_briefly(tmp_path, "deep_resnet")
    for records in (plain, residual):
        assert [r["step"] for r in records] == list(range(1, 11))
        for r in records:
            assert list(r["groups"]) == GROUPS
            assert all(math.isfinite(g["weight_norm"]) and g["weight_norm"] > 0 for g in r["groups"].values())
            assert r["groups"]["head"]["grad_norm"] > 0 and r["groups"]["head"]["update_ratio"] > 0
            assert all(0.0 <= r["groups"][g]["dead_relu"] <= 1.0 for g in GROUPS[:-1])
            assert r["groups"]["head"]["dead_relu"] is None      # a linear head: no ReLU
    # every run records the first step and then one in DYNAMICS_EVERY (10): ten steps leave one record
    assert [r["step"] for r in plain_saved] == [1] and [r["step"] for r in residual_saved] == [1]
    assert plain_saved[0]["groups"] == plain[0]["groups"]
    plain_ratio, residual_ratio = first_to_last(plain), first_to_last(residual)
    assert plain_ratio < residual_ratio / 10, (plain_ratio, residual_ratio)
    assert all(r["groups"]["stem"]["update_ratio"] > 1e-5 for r in residual)  # its first layers do learn


class KnownDead(nn.Module):
    """Biases that make a known share of ReLU units dead whatever the input: the conv's channel 0 of 4
    (bias -10, the others +10) and the hidden layer's features 0-3 of 10 (weights 0, bias -1 or +1). Batch
    norm and dropout are there to show that the dead-ReLU pass leaves training alone."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.AdaptiveAvgPool2d(2))
        self.hidden = nn.Sequential(nn.Dropout(0.5), nn.Linear(16, 10), nn.ReLU())
        self.head = nn.Linear(10, 3)
        with torch.no_grad():
            self.features[1].weight.mul_(0.01)
            self.features[1].bias.copy_(torch.tensor([-10.0, 10.0, 10.0, 10.0]))
            self.hidden[1].weight.zero_()
            self.hidden[1].bias.copy_(torch.tensor([-1.0] * 4 + [1.0] * 6))

    def forward(self, x):
        return self.head(self.hidden(self.features(x).flatten(1)))


def train_known_dead(callbacks: list) -> KnownDead:
    torch.manual_seed(0)
    model = KnownDead()
    optimizer = torch.optim.SGD([{"params": model.features.parameters(), "name": "conv"},
                                 {"params": model.hidden.parameters(), "name": "fc"},
                                 {"params": model.head.parameters(), "name": "head"}], lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 3, (16,), generator=generator))
               for _ in range(6)]
    Trainer(model, optimizer, None, batches, None, prepare=lambda x: x, device=torch.device("cpu"), epochs=2,
            callbacks=callbacks).fit()
    return model


def test_dead_relu_share_per_group_is_measured_on_a_fixed_batch_and_leaves_training_alone():
    recorder = Dynamics(every=4)
    recorded = train_known_dead([recorder])
    assert [r["step"] for r in recorder.records] == [1, 5, 9]
    for r in recorder.records:
        dead = {name: g["dead_relu"] for name, g in r["groups"].items()}
        assert dead == {"conv": 0.25, "fc": pytest.approx(0.4), "head": None}   # the head has no ReLU
    assert recorder.fixed is not None and recorder.fixed.shape == (16, 1, 8, 8)
    # the same training without the recorder: the same weights and batch-norm statistics, bit for bit
    # (the extra pass ran in eval mode without gradients: no statistics moved, no dropout drew a number)
    plain = train_known_dead([])
    for (name, a), b in zip(recorded.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
    assert recorded.training and all(m.training for m in recorded.modules())


def test_relu_units_belong_to_the_group_of_the_layer_before_them():
    from cvdemo.models import create_model, get_spec, group_parameters

    model = create_model("lenet_custom", 10)
    groups = group_parameters(model, get_spec("lenet_custom"))
    assert [g for _, g in relu_groups(model, groups)] == ["conv1", "conv2", "fc", "fc"]
    assert relu_groups(create_model("lenet", 10), group_parameters(create_model("lenet", 10), get_spec("lenet"))) == []


@pytest.mark.parametrize("model_name", ["deep_plain", "deep_resnet"])
def test_deep_networks_record_a_dead_relu_share_in_every_group_but_the_head(model_name):
    from cvdemo.models import create_model, get_spec, group_parameters

    torch.manual_seed(0)
    model = create_model(model_name, 10)
    optimizer = torch.optim.SGD([{"params": p, "name": n} for n, p in group_parameters(model, get_spec(model_name))],
                                lr=0.05)
    batches = [(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))) for _ in range(3)]
    recorder = Dynamics(every=2)
    Trainer(model, optimizer, None, batches, None, prepare=lambda x: x, device=torch.device("cpu"), epochs=1,
            callbacks=[recorder]).fit()
    assert [r["step"] for r in recorder.records] == [1, 3]
    for r in recorder.records:
        assert list(r["groups"]) == GROUPS and r["groups"]["head"]["dead_relu"] is None
        assert all(0.0 <= r["groups"][g]["dead_relu"] <= 1.0 for g in GROUPS[:-1])
