"""Several processes, one run: torchrun with gloo on the CPU, and the per-rank sharding it relies on."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from cvdemo.data.loader import SeededSampler, TensorBatches
from cvdemo.data.sharding import shard_order, shard_size
from cvdemo.train import distributed


def torchrun_train(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    """`cvdemo train --data digits --model lenet --device cpu --out tmp_path/runs --json FLAGS` as 2 gloo
    processes under torchrun, one thread each, temporary files kept under tmp_path."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "cvdemo", "train", "--data", "digits", "--model", "lenet", "--device", "cpu",
         "--out", str(tmp_path / "runs"), "--json", *flags],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_make_one_complete_run(tmp_path):
    out, scratch = tmp_path / "runs", tmp_path / "tmp"
    proc = torchrun_train(tmp_path, "--epochs", "2")
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


# -- what keeps two ranks in step (issue 19): checks run by tests/ddp_worker.py under torchrun, 2 gloo ranks --------

def torchrun_worker(out, *checks, timeout=240):
    """Run tests/ddp_worker.py on 2 gloo ranks; returns (CompletedProcess, [rank 0's results, rank 1's])."""
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "tests" / "ddp_worker.py"), str(out), *checks],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    results = [json.loads(p.read_text()) if p.exists() else None for p in (out / "rank0.json", out / "rank1.json")]
    return proc, results


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every check that ends cleanly, in one torchrun launch (they take a few seconds together)."""
    proc, results = torchrun_worker(tmp_path_factory.mktemp("ddp"), "diverge", "cancel", "seeds", "download_order",
                                    "alexnet_skip", "no_sync", "helpers", "run")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results


@pytest.mark.slow
def test_one_rank_diverging_or_cancelled_stops_both_after_the_same_step(two_ranks):
    r0, r1 = two_ranks
    # rank 1's loss alone became NaN (at step 3): both stop there, diverged, and name the NaN
    assert r0["diverge"] == r1["diverge"] == {"ended": "diverged", "step": 3, "epoch": 0, "loss": "nan"}
    # SIGTERM reached rank 0 only (after batch 1): both stop at the next sync point, cancelled
    assert r0["cancel"]["ended"] == r1["cancel"]["ended"] == "cancelled"
    assert r0["cancel"]["step"] == r1["cancel"]["step"] == 3
    assert r0["cancel"]["message"] == "cancelled by a signal"


@pytest.mark.slow
def test_ranks_draw_their_own_dropout_while_init_and_split_agree(two_ranks):
    r0, r1 = two_ranks
    s0, s1 = r0["seeds"], r1["seeds"]
    assert s0["init"] == s1["init"] and s0["split"] == s1["split"]  # build_setup: the same model and data
    assert s0["weights_after"] == s1["weights_after"]  # DDP keeps the weights identical
    for epoch, (d0, d1) in enumerate(zip(s0["draws"], s1["draws"], strict=True)):
        assert d0 != d1  # dropout/mixup draws differ between ranks...
        torch.manual_seed(5 * 100_003 + epoch)
        assert d0 == torch.rand(3).tolist()  # ...and rank 0 draws what a single process draws
    assert r0["helpers"]["rank_seed"] == 7 and r1["helpers"]["rank_seed"] != 7


@pytest.mark.slow
def test_local_rank_0_downloads_the_data_before_the_others_look(two_ranks):
    first, second = two_ranks[0]["download_order"], two_ranks[1]["download_order"]
    assert first.get("fetched") == 1 and "fetched" not in second  # one download, by local rank 0
    assert second["start"] >= first["end"]  # rank 1 waited at the barrier until it had finished


@pytest.mark.slow
def test_alexnet_skip_with_nothing_frozen_trains_under_ddp(two_ranks):
    for r in two_ranks:
        result = r["alexnet_skip"]
        assert not any(result["features_requires_grad"]) and all(result["others_requires_grad"])
        assert result["ended"] == "completed" and result["step"] == 2  # DDP did not wait for their gradients


@pytest.mark.slow
def test_accumulation_all_reduces_once_per_optimiser_step(two_ranks):
    r0, r1 = two_ranks
    for r in (r0, r1):  # 4 batches, --accumulate 2: 2 steps, 2 all-reduces (one bucket), not 4
        assert (r["no_sync"]["batches"], r["no_sync"]["steps"], r["no_sync"]["reductions"]) == (4, 2, 2)
    assert r0["no_sync"]["weights"] == r1["no_sync"]["weights"]


@pytest.mark.slow
def test_run_under_torchrun_compiles_ddp_agrees_on_residency_and_warns_about_the_lr(two_ranks):
    r0, r1 = two_ranks
    assert r0["helpers"]["lr"] == r1["helpers"]["lr"] == 0.0123  # rank 0's rate (the finder's) on both
    assert not r0["helpers"]["agree_mixed"] and r0["helpers"]["agree_all"]
    assert "linear scaling rule suggests --lr 0.2" in r0["helpers"]["warning_sgd"]
    assert "square-root" in r0["helpers"]["warning_adamw"]
    for r in (r0, r1):
        run = r["run"]
        assert run["status"] == "completed"
        assert run["compiled"] == ["DistributedDataParallel"]  # torch.compile(DDP(model)), not DDP(compiled)
        # rank 0 "fits" the data on its device, rank 1 does not: neither keeps it resident
        assert run["resident"][:2] == ["off", "off"]
        assert len(run["warnings"]) == 1 and "x --accumulate 2 = a global batch of 64" in run["warnings"][0]
    assert r0["run"]["warned"] == r0["run"]["warnings"] and r1["run"]["warned"] == []  # rank 0 speaks


@pytest.mark.slow
def test_a_rank_failing_alone_does_not_leave_the_other_waiting(tmp_path):
    started = time.time()
    proc, (r0, r1) = torchrun_worker(tmp_path, "fail", timeout=120)
    assert proc.returncode != 0  # the run failed, loudly
    assert r1 == {"fail": {"ended": "error", "error": "RuntimeError", "time": r1["fail"]["time"]}}
    # rank 0 was inside an all-reduce for the next step: it ended within seconds, not at a collective timeout
    assert time.time() - started < 90
    assert r0 is None or r0["fail"]["ended"] == "error"


@pytest.mark.slow
def test_lr_find_under_torchrun_runs_once_on_rank_0_and_all_train_at_its_rate(tmp_path):
    proc = torchrun_train(tmp_path, "--epochs", "1", "--lr-find")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("learning-rate finder suggests") == 1  # rank 0 alone swept
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][0])
    suggested = float(proc.stderr.split("learning-rate finder suggests ")[1].split()[0])
    assert result["status"] == "completed" and result["lr"] == pytest.approx(suggested, rel=1e-2)
    config = json.loads((Path(result["run"]) / "config.json").read_text())
    assert config["train"]["lr"] == result["lr"]  # the run folder records the rate it trained at
    assert "global batch of 32" in proc.stderr  # the learning-rate warning, once
    assert proc.stderr.count("global batch of 32") == 1


# -- the same, without a process group: the single-process path is unchanged -----------------------------------------

def test_outside_a_process_group_the_agreements_are_the_local_answers():
    cpu = torch.device("cpu")
    assert distributed.agree_to_stop(torch.tensor(1.5), False) == (1.5, 1.5, False)
    own, worst, stop = distributed.agree_to_stop(torch.tensor(float("nan")), True)
    assert own != own and worst != worst and stop
    assert distributed.all_agree(False, cpu) is False and distributed.broadcast_float(0.5, cpu) == 0.5
    assert distributed.rank_seed(7) == 7 and distributed.batch_warning(32, 0.1, "sgd") is None
    with distributed.local_main_first():
        pass  # no barrier to wait at
    model = torch.nn.Linear(2, 2)
    assert distributed.ddp_module(model) is None and distributed.unwrap(model) is model


def test_a_stop_request_in_one_process_stops_at_once():
    from cvdemo.train.trainer import StopTraining, Trainer

    model = torch.nn.Linear(2, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), None, [], None,
                      prepare=lambda x: x, device=torch.device("cpu"), epochs=1)
    assert trainer.ddp is None and not trainer.distributed
    with pytest.raises(StopTraining, match="asked"):
        trainer.request_stop("asked")


def test_a_failing_rank_aborts_its_process_group_instead_of_the_orderly_shutdown(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: calls.append("init"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(distributed, "abort", lambda: calls.append("abort"))
    launch = distributed.Launch(rank=1, local_rank=1, world_size=2)
    with distributed.process_group(launch, "cpu"):
        pass
    assert calls == ["init", "destroy"]
    calls.clear()
    with pytest.raises(MemoryError), distributed.process_group(launch, "cpu"):
        raise MemoryError("rank 1 alone")
    assert calls == ["init", "abort"]


def test_alexnet_skips_fixed_features_never_get_requires_grad():
    from cvdemo.config import RunConfig
    from cvdemo.models import count_parameters, create_model
    from cvdemo.train.groups import apply_freezing, plan_groups

    model = create_model("alexnet_skip", 3, pretrained=False)
    groups = plan_groups(model, RunConfig().replace(model={"name": "alexnet_skip", "pretrained": False}))
    for epoch in (1, 2):
        apply_freezing(groups, epoch)
        assert not any(p.requires_grad for p in model.features.parameters())
        assert all(p.requires_grad for p in model.fc.parameters())
    total, trainable = count_parameters(model)  # the run's summary no longer counts them as trained
    assert trainable == total - sum(p.numel() for p in model.features.parameters())
