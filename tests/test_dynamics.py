"""Training dynamics (issue 14, item 5): per layer group gradient norm, weight norm and update/weight ratio,
recorded every N steps during every run; the plain deep network's gradients vanish, the residual one's do not."""

import math

import pytest

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.train.dynamics import Dynamics
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
    # every run records the first step and then one in DYNAMICS_EVERY (10): ten steps leave one record
    assert [r["step"] for r in plain_saved] == [1] and [r["step"] for r in residual_saved] == [1]
    assert plain_saved[0]["groups"] == plain[0]["groups"]
    plain_ratio, residual_ratio = first_to_last(plain), first_to_last(residual)
    assert plain_ratio < residual_ratio / 10, (plain_ratio, residual_ratio)
    assert all(r["groups"]["stem"]["update_ratio"] > 1e-5 for r in residual)  # its first layers do learn
