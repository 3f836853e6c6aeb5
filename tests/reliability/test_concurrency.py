"""Several users and jobs at once: run ids never collide, background runs queue for a limited number of
training slots ($CVDEMO_MAX_RUNNING), two jobs train side by side into their own folders, a queued run
can be cancelled, and a killed run never keeps its slot."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import cvdemo

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint
from cvdemo.config import RunConfig

TWO_SECONDS = {"data": {"limit_train": 400, "limit_test": 50}, "train": {"epochs": 1, "batch_size": 8}}


def _create_many(args) -> list[str]:
    root, n = args
    return [runs.create_run(root, RunConfig()).name for _ in range(n)]


def test_run_ids_never_collide_across_threads_and_processes(runs_root, monkeypatch):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:  # four processes, 60 runs each, all within the same second or two
        names = [n for part in pool.map(_create_many, [(runs_root, 60)] * 4) for n in part]
    assert len(names) == len(set(names)) == 240

    # Threads, with the random part of the id squeezed to 64 values: collisions are certain, and each
    # must be resolved by the exclusive mkdir, not by luck.
    tokens = iter(f"{i % 64:04x}" for i in range(10**6))
    lock = threading.Lock()

    def token(nbytes):
        with lock:
            return next(tokens)

    monkeypatch.setattr(runs.secrets, "token_hex", token)
    with ThreadPoolExecutor(8) as ex:
        dirs = list(ex.map(lambda _: runs.create_run(runs_root / "threads", RunConfig()), range(48)))
    assert len({d.name for d in dirs}) == 48
    for d in dirs:  # each folder whole: its own config and status, nothing overwritten by another thread
        assert RunConfig.from_json_file(d / "config.json") == RunConfig()
        assert runs.read_status(d)["state"] == "queued"


def test_the_slot_limit_holds_under_many_threads(runs_root):
    limit, lock = 3, threading.Lock()
    active, peak = [0], [0]

    def job(i):
        run_dir = runs_root / f"job{i}"
        run_dir.mkdir()
        slot = runs.wait_for_slot(run_dir, limit=limit, poll=0.01)
        try:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1
        finally:
            slot.close()
        return True

    with ThreadPoolExecutor(10) as ex:
        assert all(ex.map(job, range(10)))
    assert peak[0] == limit


def test_a_killed_process_never_keeps_its_slot(runs_root):
    (runs_root / ".slots").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(600)"), str(runs_root / ".slots" / "0.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (runs_root / "waiting").mkdir()
        waiter: dict = {}
        t = threading.Thread(target=lambda: waiter.update(slot=runs.wait_for_slot(runs_root / "waiting", limit=1,
                                                                                   poll=0.02)))
        t.start()
        time.sleep(0.5)
        assert t.is_alive() and runs.read_status(runs_root / "waiting")["state"] == "queued"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        t.join(timeout=10)
        assert not t.is_alive() and waiter["slot"] is not None
        waiter["slot"].close()
    finally:
        if holder.poll() is None:
            holder.kill()


def states(dirs: list[Path]) -> list[str]:
    return [runs.read_status(d)["state"] for d in dirs]


@pytest.mark.slow
def test_background_runs_queue_for_slots_train_side_by_side_and_cancel_while_queued(runs_root, monkeypatch):
    monkeypatch.setenv("CVDEMO_MAX_RUNNING", "2")
    (runs_root / "holder-a").mkdir()
    (runs_root / "holder-b").mkdir()
    held = [runs.wait_for_slot(runs_root / "holder-a"), runs.wait_for_slot(runs_root / "holder-b")]
    assert all(held)  # this test holds both slots: every launched run must wait
    config = RunConfig().replace(**TWO_SECONDS)
    launched = [runs.launch(config, runs_root) for _ in range(3)]
    try:
        assert len({d.name for d in launched}) == 3
        deadline = time.time() + 120
        while time.time() < deadline:
            if all("waiting for a free slot" in runs.read_status(d).get("message", "") for d in launched):
                break
            time.sleep(0.1)
        assert all(s == "queued" for s in states(launched)), [runs.read_status(d) for d in launched]

        assert runs.cancel(launched[2])  # a queued run cancels without ever training
        deadline = time.time() + 60
        while runs.read_status(launched[2])["state"] == "queued" and time.time() < deadline:
            time.sleep(0.1)
        status = runs.read_status(launched[2])
        assert status["state"] == "cancelled" and "while waiting for a free slot" in status["message"], status

        for f in held:  # free both slots: the two waiting runs start together
            f.close()
        peak, both_ran = 0, False
        deadline = time.time() + 240
        while time.time() < deadline:
            now = states(launched[:2])
            running = now.count("running")
            peak = max(peak, running)
            if running == 2 and not both_ran:
                both_ran = True
                # A fresh process (the app restarted, or another user) sees the runs as they are.
                listed = json.loads(cvdemo("runs", "--json", timeout=60).stdout.strip().splitlines()[-1])
                seen = {r["id"]: r["state"] for r in listed["runs"]}
                assert seen[launched[2].name] == "cancelled"
                assert {seen[d.name] for d in launched[:2]} <= {"running", "completed"}
            if all(s not in ("queued", "running") for s in now):
                break
            time.sleep(0.05)
        assert states(launched[:2]) == ["completed", "completed"], [runs.read_status(d) for d in launched]
        assert peak <= 2
        assert both_ran, "the two runs never trained at the same time"
        for d in launched[:2]:  # each finished into its own folder, with its own checkpoints
            assert load_checkpoint(d / "best.pt")["epoch"] == 1
            assert runs.read_json(d / "summary.json")["run"] == str(d)
        assert not (launched[2] / "last.pt").exists()
    finally:
        for d in launched:
            runs.cancel(d)


@pytest.mark.parametrize("value, fragment", [("two", "got 'two'"), ("-1", "at least 0")])
def test_a_bad_slot_limit_is_a_sentence(monkeypatch, value, fragment):
    from cvdemo import limits
    from cvdemo.errors import ConfigError

    monkeypatch.setenv("CVDEMO_MAX_RUNNING", value)
    with pytest.raises(ConfigError, match="CVDEMO_MAX_RUNNING must be a whole number") as err:
        limits.max_running()
    assert fragment in str(err.value) and "fix it or unset it" in str(err.value)
