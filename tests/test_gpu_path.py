"""The GPU path's logic, checked on the CPU (issue 19): what only a GPU shows is in `make gpu-check`.

Each test stubs the one CUDA query its rule depends on (device count, compute capability) or uses the
meta device, where tensors report a device other than the CPU without any memory behind them.
"""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT
from torch import nn

from cvdemo import device as devices
from cvdemo import runs
from cvdemo.config import RunConfig, TrainConfig
from cvdemo.data.loader import TensorBatches, default_workers
from cvdemo.errors import CvdemoError
from cvdemo.train import feature_cache, job, trainer
from cvdemo.train.callbacks import RunWriter
from cvdemo.train.optim import build_optimizer
from cvdemo.train.trainer import StopTraining, Trainer, evaluate, mix_batch, sampled_batch

# a head-only run whose backbone features are cached (pretrained weights ship in a pip package)
SMALL = {"limit_train": 300, "limit_test": 100}  # digits: a run of a second or two
FROZEN = {"data": {"limit_train": 60, "limit_test": 30, "image_size": 32},
          "model": {"name": "efficientnet_lite0", "pretrained": True, "freeze": "backbone"},
          "train": {"epochs": 1, "batch_size": 16}}


# -- finding 1: labels live with the cached features ----------------------------------------------------

def test_tensor_batches_keep_labels_on_the_features_device():
    features = torch.empty(10, 4, device="meta")  # "on the device": not the CPU
    batches = TensorBatches(features, torch.arange(10), batch_size=4, shuffle=True, seed=0)
    for x, y in batches:
        assert x.device.type == y.device.type == "meta"
    assert [len(y) for _, y in batches] == [4, 4, 2]


def test_feature_batches_move_the_labels_with_the_features(monkeypatch):
    seen = {}

    def head_inputs(setup, images, head, amp, batch_size=256, meter=None, runs_root=None):
        seen["cache_batch"] = batch_size
        return torch.empty(len(images.labels), 8, device="meta")

    monkeypatch.setattr(feature_cache, "head_inputs", head_inputs)
    images = SimpleNamespace(labels=torch.arange(6) % 3)
    out = feature_cache.feature_batches(None, images, None, None, 4, True, 0, cache_batch=96)
    assert out.images.device.type == out.labels.device.type == "meta"
    assert seen["cache_batch"] == 96
    assert all(y.device.type == "meta" for _, y in out)


# -- finding 6: one run per GPU ---------------------------------------------------------------------------

def stub_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    picked = []
    monkeypatch.setattr(torch.cuda, "set_device", picked.append)
    return picked


def test_slot_i_trains_on_gpu_i(monkeypatch):
    picked = stub_gpus(monkeypatch, 3)
    assert [devices.slot_gpu(i) for i in range(4)] == [0, 1, 2, 0]
    assert devices.use_slot_gpu(1, "auto") == torch.device("cuda", 1)
    assert devices.use_slot_gpu(2, "cuda") == torch.device("cuda", 2)
    assert picked == [1, 2]
    assert devices.use_slot_gpu(1, "cpu") is None and devices.use_slot_gpu(None, "auto") is None
    assert picked == [1, 2]


def test_no_gpu_no_pinning(monkeypatch):
    picked = stub_gpus(monkeypatch, 0)
    assert devices.slot_gpu(0) is None and devices.use_slot_gpu(0, "auto") is None and picked == []


def test_wait_for_slot_tells_which_slot(tmp_path):
    cfg = RunConfig()
    a, b = runs.create_run(tmp_path, cfg), runs.create_run(tmp_path, cfg)
    first, second = runs.wait_for_slot(a, limit=2), runs.wait_for_slot(b, limit=2)
    try:
        assert (runs.slot_number(first), runs.slot_number(second)) == (0, 1)
    finally:
        first.close()
        second.close()
    assert runs.slot_number(None) is None


# -- finding 7: batch size of each phase, and the out-of-memory message -----------------------------------

def test_eval_batch_follows_the_run_batch_on_a_gpu():
    cuda = torch.device("cuda")
    assert [devices.eval_batch_size(b, cuda) for b in (1, 64, 512)] == [2, 128, 1024]
    assert devices.eval_batch_size(32, torch.device("cpu")) == devices.eval_batch_size(512, torch.device("cpu")) == 64


def test_every_phase_uses_the_eval_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "eval_batch_size", lambda b, d: 3 * b)  # a size nothing else would pick
    sizes = []
    real = job.make_loader

    def spy(images, **kw):
        sizes.append(kw["batch_size"])
        return real(images, **kw)

    monkeypatch.setattr(job, "make_loader", spy)
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 1, "batch_size": 20})
    assert job.run_training(cfg, runs.create_run(tmp_path, cfg))["status"] == "completed"
    assert sizes == [20, 60, 60]  # train, validation, test


@pytest.mark.slow
def test_feature_cache_uses_the_eval_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "eval_batch_size", lambda b, d: 3 * b)
    cached = []
    real = feature_cache.head_inputs

    def spy(setup, images, head, amp, batch_size=256, meter=None, runs_root=None):
        cached.append(batch_size)
        return real(setup, images, head, amp, batch_size, runs_root=runs_root)

    monkeypatch.setattr(feature_cache, "head_inputs", spy)
    cfg = RunConfig().replace(**FROZEN)
    summary = job.run_training(cfg, runs.create_run(tmp_path, cfg))
    assert summary["cached_features"] and cached == [48, 48, 48]  # train, validation, test


def raise_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("where, patch, phase", [
    ("training", (Trainer, "train_one_epoch"), "training"),
    ("validation", (trainer, "evaluate"), "validation"),
    ("test", (job, "evaluate"), "the test pass"),
])
def test_out_of_memory_names_its_phase(tmp_path, monkeypatch, where, patch, phase):
    monkeypatch.setattr(*patch, raise_oom)
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 1, "batch_size": 64})
    run_dir = runs.create_run(tmp_path, cfg)
    with pytest.raises(CvdemoError) as info:
        job.run_training(cfg, run_dir)
    message = str(info.value)
    assert f"ran out of memory in {phase} " in message and "--batch-size 32" in message
    assert ("--accumulate 2" in message) == (phase == "training")
    assert "\n" not in message and ". " not in message  # one sentence
    assert runs.read_status(run_dir) == {**runs.read_status(run_dir), "state": "failed", "message": message}


def test_out_of_memory_in_the_feature_cache_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "head_inputs", raise_oom)
    cfg = RunConfig().replace(**FROZEN)
    with pytest.raises(CvdemoError, match="out of memory in the frozen backbone's feature cache .*--batch-size 8"):
        job.run_training(cfg, runs.create_run(tmp_path, cfg))


# -- finding 8: live curves get their points on a GPU -----------------------------------------------------

def tiny_trainer(callbacks, batches=23, sync_every=25, accumulate=1):
    torch.manual_seed(0)
    x, y = torch.randint(0, 255, (batches * 4, 1, 4, 4), dtype=torch.uint8), torch.arange(batches * 4) % 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    opt = build_optimizer(model.parameters(), TrainConfig(lr=0.01, optimizer="sgd"))
    loader = [(x[i:i + 4], y[i:i + 4]) for i in range(0, len(x), 4)]
    t = Trainer(model, opt, None, loader, None, prepare=lambda b: b.float() / 255, device=torch.device("cpu"),
                epochs=2, callbacks=callbacks, accumulate=accumulate)
    t.sync_every = sync_every  # as on a GPU: the loss is not read at every step
    return t


@pytest.mark.parametrize("accumulate", [1, 3])
def test_the_loss_is_read_at_every_batch_the_run_writer_samples(accumulate):
    seen = []

    class Record:
        def on_batch_end(self, t, info):
            seen.append((info.batch, info.batches, info.loss))

    tiny_trainer([Record()], accumulate=accumulate).fit()
    sampled = [(b, loss) for b, n, loss in seen if sampled_batch(b, n)]
    assert len(sampled) == 2 * 12  # every 2nd of 23 batches, plus the last, per epoch
    assert all(loss is not None for _, loss in sampled)


def test_run_writer_writes_a_point_at_each_sampled_batch(tmp_path):
    cfg = RunConfig()
    run_dir = runs.create_run(tmp_path, cfg)
    writer = RunWriter(run_dir, cfg, SimpleNamespace(), [])
    t = tiny_trainer([])
    for batch in range(23):
        loss = 1.0 if sampled_batch(batch, 23) else None  # what the trainer hands over on a GPU
        writer.on_batch_end(t, SimpleNamespace(batch=batch, batches=23, loss=loss, epoch=0, step=batch, lr=0.1))
    steps = [m for m in runs.read_metrics(run_dir) if m["kind"] == "step"]
    assert len(steps) == 12


# -- finding 10: precision, global switches, host syncs, workers, checkpoints, benchmarks -----------------

@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_is_bf16_only_where_native(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert devices.amp_dtype("auto", torch.device("cuda")) == expected
    assert devices.amp_dtype("auto", torch.device("cpu")) is None
    assert devices.amp_dtype("bf16", torch.device("cuda")) == torch.bfloat16  # asked for: given


def test_auto_fp16_gets_a_gradient_scaler():
    model = nn.Linear(2, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), None, [], None, prepare=lambda x: x,
                device=torch.device("cpu"), epochs=1, amp_dtype=torch.float16)
    assert t.scaler is not None


def test_speed_switches_only_on_cuda():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, False, False
        devices.tune_for_speed(torch.device("cpu"))
        assert not cudnn.benchmark and not cudnn.allow_tf32 and not matmul.allow_tf32
        devices.tune_for_speed(torch.device("cuda"))
        assert cudnn.benchmark and cudnn.allow_tf32 and matmul.allow_tf32
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_mix_batch_draws_its_permutation_on_the_batch_device(monkeypatch):
    devices_asked = []
    real = torch.randperm

    def randperm(n, *args, **kwargs):
        devices_asked.append(kwargs.get("device"))
        return real(n, *args, **kwargs)

    monkeypatch.setattr(torch, "randperm", randperm)
    x = torch.empty(8, 3, 4, 4, device="meta")
    for mixup, cutmix in ((0.2, 0.0), (0.0, 1.0)):
        mixed, a, b, lam = mix_batch(x, torch.empty(8, dtype=torch.long, device="meta"), mixup, cutmix)
        assert mixed.device.type == b.device.type == "meta"
    assert devices_asked == [x.device, x.device]


def test_evaluate_counts_the_confusion_without_bincount(monkeypatch):
    def no_bincount(*args, **kwargs):
        raise AssertionError("bincount syncs with the host on CUDA")

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    data = [(torch.randn(16, 1, 4, 4), torch.arange(16) % 4) for _ in range(3)]
    expected = evaluate(model, data, lambda x: x, torch.device("cpu"))
    monkeypatch.setattr(torch, "bincount", no_bincount)
    got = evaluate(model, data, lambda x: x, torch.device("cpu"))
    assert got == expected
    logits = torch.cat([model(x) for x, _ in data]).argmax(1)
    labels = torch.cat([y for _, y in data])
    f1s = []
    for c in range(4):
        tp = ((logits == c) & (labels == c)).sum().item()
        support, predicted = (labels == c).sum().item(), (logits == c).sum().item()
        if support + predicted:
            f1s.append(2 * tp / (support + predicted))
    assert got["macro_f1"] == pytest.approx(sum(f1s) / len(f1s))


def test_workers_follow_the_cores_when_feeding_a_gpu(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers(True, in_memory=False) == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers(True, in_memory=True) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_workers(True, in_memory=False) == 16
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_workers(True, in_memory=False) == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers(False, in_memory=True) == 0 and default_workers(False, in_memory=False) == 2


def checkpoint_writes(monkeypatch):
    writes = []
    real = runs.write_atomic

    def spy(path, data):
        if path.suffix == ".pt":
            writes.append(path.name)
        real(path, data)

    monkeypatch.setattr(runs, "write_atomic", spy)
    return writes


def test_short_epochs_write_checkpoints_after_the_first_and_the_last(tmp_path, monkeypatch):
    writes = checkpoint_writes(monkeypatch)
    monkeypatch.setattr("cvdemo.train.callbacks.CHECKPOINT_INTERVAL_S", 3600.0)
    cfg = RunConfig().replace(data=SMALL, train={"epochs": 4, "batch_size": 64})
    run_dir = runs.create_run(tmp_path, cfg)
    assert job.run_training(cfg, run_dir)["status"] == "completed"
    assert writes.count("last.pt") == 2  # after epoch 1 and epoch 4, not 2 and 3
    from cvdemo.checkpoint import load_checkpoint

    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 4
    best = load_checkpoint(run_dir / "best.pt")
    epochs = [m for m in runs.read_metrics(run_dir) if m["kind"] == "epoch"]
    assert best["val_top1"] == max(m["val_top1"] for m in epochs)


def test_a_cancelled_run_still_saves_its_last_finished_epoch(tmp_path, monkeypatch):
    writes = checkpoint_writes(monkeypatch)
    monkeypatch.setattr("cvdemo.train.callbacks.CHECKPOINT_INTERVAL_S", 3600.0)

    class CancelInEpoch3:
        def on_batch_end(self, t, info):
            if info.epoch == 2:
                raise StopTraining("cancel")

    cfg = RunConfig().replace(data=SMALL, train={"epochs": 5, "batch_size": 64})
    run_dir = runs.create_run(tmp_path, cfg)
    assert job.run_training(cfg, run_dir, callbacks=[CancelInEpoch3()])["status"] == "cancelled"
    from cvdemo.checkpoint import load_checkpoint

    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 2 and writes.count("last.pt") == 2


def test_gpu_timings_warm_up_and_synchronise(monkeypatch):
    from cvdemo.bench._timing import timed

    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: events.append("sync"))
    timed(lambda: events.append("call"), 2, device=torch.device("cuda"))
    assert events == ["call", "sync", "call", "sync", "sync", "call", "sync"]
    events.clear()
    timed(lambda: events.append("call"), 2, device=torch.device("cpu"))
    assert events == ["call", "call"]


# -- finding 11 ----------------------------------------------------------------------------------------

def test_cifar10_fast_is_retuned_and_says_what_it_expects():
    from cvdemo.recipes import load_recipe

    recipe = load_recipe("cifar10-fast")
    assert (recipe.config.train.epochs, recipe.config.train.lr) == (24, 0.4)
    assert "94%" in recipe.description and "Unmeasured" in recipe.description


# -- the GPU check on a machine without one -----------------------------------------------------------

def test_gpu_check_without_cuda_fails_at_once_with_one_sentence():
    import os

    proc = subprocess.run([sys.executable, "-m", "cvdemo.bench.gpu_check"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0
    assert "no CUDA device" in out and len(out.splitlines()) == 1 and out.count(". ") == 0 and out.endswith(".")


def test_a_wrong_distributed_backend_is_one_sentence(monkeypatch):
    from cvdemo.errors import ConfigError
    from cvdemo.train import distributed

    monkeypatch.setenv("CVDEMO_DIST_BACKEND", "mpi")
    with pytest.raises(ConfigError, match="CVDEMO_DIST_BACKEND must be nccl or gloo"):
        with distributed.process_group(distributed.Launch(0, 0, 2), "cpu"):
            pass
