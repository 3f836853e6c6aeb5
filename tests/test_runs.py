"""The run store: atomic writes, status of dead processes, safe checkpoint loading."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

from cvdemo import runs
from cvdemo.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError


def test_create_run_makes_unique_folders_with_config_and_status(tmp_path):
    cfg = RunConfig()
    dirs = {runs.create_run(tmp_path, cfg) for _ in range(20)}
    assert len(dirs) == 20
    for d in dirs:
        assert RunConfig.from_json_file(d / "config.json") == cfg
        assert runs.read_status(d)["state"] == "queued"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    runs.write_json(path, {"state": "completed"})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        runs.write_json(path, {"state": "running"})
    assert runs.read_json(path) == {"state": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary left behind


def test_running_status_of_a_dead_process_reads_interrupted(tmp_path):
    run_dir = runs.create_run(tmp_path, RunConfig())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.write_status(run_dir, "running", "epoch 1 of 10", pid=proc.pid)
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted"
    runs.write_status(run_dir, "running", "epoch 1 of 10")  # this process: alive
    assert runs.read_status(run_dir)["state"] == "running"


def test_metrics_reader_ignores_a_half_written_line(tmp_path):
    runs.append_metrics(tmp_path, {"kind": "epoch", "epoch": 1})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "epoch", "ep')
    assert runs.read_metrics(tmp_path) == [{"kind": "epoch", "epoch": 1}]


def test_checkpoint_round_trip(tmp_path):
    payload = {"model": "lenet", "state_dict": {"w": torch.arange(4.0)}, "classes": ["a", "b"]}
    save_checkpoint(tmp_path / "best.pt", payload)
    back = load_checkpoint(tmp_path / "best.pt")
    assert back["classes"] == ["a", "b"] and torch.equal(back["state_dict"]["w"], torch.arange(4.0))


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cvdemo-pwned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/cvdemo-pwned")


@pytest.mark.parametrize("content, fragment", [
    (b"", "damaged"), (b"not a checkpoint at all", "damaged"), (None, "does not exist")])
def test_damaged_checkpoints_are_named(tmp_path, content, fragment):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=fragment):
        load_checkpoint(path)


def test_truncated_checkpoint_is_damaged(tmp_path):
    save_checkpoint(tmp_path / "a.pt", {"state_dict": {"w": torch.randn(1000)}})
    data = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "b.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "b.pt")


def test_plain_torch_file_is_not_a_cvdemo_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="not a cvdemo checkpoint"):
        load_checkpoint(tmp_path / "w.pt")
    pickle.dumps(1)  # keep the import honest: pickle is what weights_only refuses
