"""Several processes, one run: torchrun with gloo on the CPU, and the per-rank sharding it relies on."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT

from cvdemo.data.loader import SeededSampler, TensorBatches
from cvdemo.data.sharding import shard_order, shard_size
from cvdemo.train import distributed


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_make_one_complete_run(tmp_path):
    out, scratch = tmp_path / "runs", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "cvdemo", "train", "--data", "digits", "--model", "lenet", "--epochs", "2", "--device", "cpu",
         "--out", str(out), "--json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, proc.stdout  # rank 1 prints nothing
    assert proc.stderr.count("training into") == 1
    result = json.loads(lines[0])
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1 and str(folders[0]) == result["run"]
    run = folders[0]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert (run / "best.pt").exists() and (run / "last.pt").exists()
    assert result["status"] == "completed" and result["test"]["top1"] > 0.8 and result["test"]["n"] == 360
    epochs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [m for m in epochs if m["kind"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    for m in epochs:  # 1078 training digits: each rank took half of every epoch
        assert m["rank_samples"] == [539, 539]
        assert 0 < m["train_loss"] < 3 and 0 <= m["train_top1"] <= 1
    assert not list(scratch.glob("cvdemo-rank*"))  # rank 1's scratch records were removed

    # The validation figures were summed over both ranks' halves: they equal one process evaluating best.pt.
    from cvdemo.checkpoint import load_checkpoint
    from cvdemo.config import RunConfig
    from cvdemo.data import make_loader
    from cvdemo.train import evaluate
    from cvdemo.train.setup import build_setup

    setup = build_setup(RunConfig.from_json_file(run / "config.json"))
    setup.model.load_state_dict(load_checkpoint(run / "best.pt")["state_dict"])
    val = evaluate(setup.model, make_loader(setup.bundle.val, batch_size=256, shuffle=False), setup.prepare,
                   setup.device)
    assert epochs[-1]["val_top1"] == pytest.approx(val["top1"], abs=1e-6)  # the same count; float32 vs 64
    assert epochs[-1]["val_loss"] == pytest.approx(val["loss"], rel=1e-4)
    assert epochs[-1]["val_macro_f1"] == pytest.approx(val["macro_f1"], abs=1e-6)


def test_launch_is_read_from_torchruns_variables():
    assert distributed.from_env({}) is None
    assert distributed.from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    launch = distributed.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (launch.rank, launch.local_rank, launch.world_size, launch.is_main) == (3, 1, 4, False)
    with pytest.raises(distributed.ConfigError, match="outside"):
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert not distributed.active() and distributed.rank_and_size() == (0, 1)
    assert distributed.reduce_sums([1, torch.tensor(2.5)], torch.device("cpu")) == [1.0, 2.5]


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (11, 3), (2, 3), (0, 2)])
def test_shards_deal_out_one_epoch(n, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shares = [shard_order(order, r, world, pad=False) for r in range(world)]
    assert sorted(torch.cat(shares).tolist()) == sorted(order.tolist())  # each sample exactly once
    assert [len(s) for s in shares] == [shard_size(n, r, world, pad=False) for r in range(world)]
    padded = [shard_order(order, r, world, pad=True) for r in range(world)]
    sizes = {len(s) for s in padded}
    assert sizes == {-(-n // world)} and sizes == {shard_size(n, 0, world, pad=True)}
    assert set(torch.cat(padded).tolist()) == set(order.tolist())  # every sample, a few twice


@pytest.mark.parametrize("augment", ["none", "standard"])
def test_sharded_loaders_together_yield_the_single_process_epoch(augment):
    images = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1).expand(23, 1, 8, 8).contiguous()
    images[:, :, 0, :3] = 200  # an asymmetric mark, so crops and flips show
    labels = torch.arange(23) % 4
    whole = TensorBatches(images, labels, batch_size=5, shuffle=True, seed=3, augment=augment)
    whole.set_epoch(2)
    expected = sorted(x.flatten().tolist() for b, _ in whole for x in b)
    got = []
    for rank in range(2):
        part = TensorBatches(images, labels, batch_size=5, shuffle=True, seed=3, augment=augment)
        part.shard(rank, 2, pad=False)
        part.set_epoch(2)
        assert len(part) == -(-len(range(rank, 23, 2)) // 5)
        got += [x.flatten().tolist() for b, _ in part for x in b]
    assert sorted(got) == expected  # the same samples with the same crops and flips

    sampler = SeededSampler(23, shuffle=True, seed=3)
    single = list(sampler)
    pairs = []
    for rank in range(2):
        s = SeededSampler(23, shuffle=True, seed=3)
        s.shard(rank, 2, pad=True)
        assert len(s) == 12
        pairs += list(s)
    assert set(pairs) == set(single) and len(pairs) == 24  # one pair padded in twice


def test_what_cannot_run_under_torchrun_is_refused_in_one_sentence(monkeypatch, capsys):
    from cvdemo.cli import main
    from cvdemo.config import RunConfig

    cfg = RunConfig().replace(model={"name": "resnet18", "pretrained": True, "freeze": "backbone"},
                              train={"unfreeze_at": (2,)})
    with pytest.raises(distributed.ConfigError, match="unfreeze-at"):
        distributed.check_config(cfg)
    distributed.check_config(RunConfig())  # the defaults are fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--resume", "some-run"]) == 2
    assert "under torchrun a run starts fresh" in capsys.readouterr().err
