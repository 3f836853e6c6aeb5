"""CPU runs side by side split the cores (cvdemo.train.cpu_share); the speed it buys is in
`cvdemo bench concurrent`, not here."""

import os
import subprocess
import sys

import pytest
import torch

from cvdemo.train.cpu_share import CoreShare, live_cpu_runs, share_cores, threads_for


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_an_equal_share_of_at_least_one_thread():
    assert [threads_for(8, n) for n in (0, 1, 2, 3, 8, 20)] == [8, 8, 4, 2, 1, 1]


def test_markers_of_dead_processes_are_removed_and_not_counted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / str(dead.pid)).touch()
    (tmp_path / str(os.getpid())).touch()
    (tmp_path / "notes.txt").touch()  # not a marker
    assert live_cpu_runs(tmp_path) == 1
    assert not (tmp_path / str(dead.pid)).exists() and (tmp_path / "notes.txt").exists()


def test_a_run_takes_its_share_while_a_neighbour_lives_and_everything_back_after(tmp_path, threads):
    torch.set_num_threads(4)
    neighbour = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".cpu").mkdir()
        (tmp_path / ".cpu" / str(neighbour.pid)).touch()
        with share_cores(tmp_path, "cpu") as share:
            assert isinstance(share, CoreShare)
            assert (tmp_path / ".cpu" / str(os.getpid())).exists()
            assert torch.get_num_threads() == 2  # two live runs share 4 threads
            neighbour.kill()
            neighbour.wait()
            share.refresh()  # what on_batch_end does every few seconds
            assert torch.get_num_threads() == 4  # the neighbour ended: its cores come back
        assert not (tmp_path / ".cpu" / str(os.getpid())).exists()
        assert torch.get_num_threads() == 4
    finally:
        neighbour.kill()


def test_off_on_request_and_off_the_cpu(tmp_path, threads, monkeypatch):
    torch.set_num_threads(4)
    (tmp_path / ".cpu").mkdir()
    (tmp_path / ".cpu" / str(os.getppid())).touch()  # a live neighbour
    for device, env in (("cpu", "0"), ("cuda", "1")):
        monkeypatch.setenv("CVDEMO_SHARE_CORES", env)
        with share_cores(tmp_path, device):
            assert torch.get_num_threads() == 4
    monkeypatch.setenv("CVDEMO_SHARE_CORES", "lots")
    with pytest.raises(Exception, match="CVDEMO_SHARE_CORES must be a whole number"):
        with share_cores(tmp_path, "cpu"):
            pass
