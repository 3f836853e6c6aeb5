"""The run store: one folder per run, the folder is the truth.

    runs/<id>/config.json     the RunConfig that made it
              status.json     {"state": queued|running|completed|diverged|cancelled|failed, "message", "pid", ...}
              metrics.jsonl   one JSON object per epoch (and per test evaluation)
              summary.json    final figures, written when the run ends
              best.pt         weights with the best validation top-1 (plus what inference needs)
              last.pt         weights, optimizer and scheduler after the last finished epoch

Every whole-file write is atomic (temporary file in the same folder, then
rename), so a killed process leaves the previous version intact. A run whose
status says running but whose process is gone is reported as `interrupted`.
Checkpoint files are written and read by `cvdemo.checkpoint`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

from cvdemo import limits
from cvdemo.config import RunConfig
from cvdemo.errors import CvdemoError

RunDir: TypeAlias = Path
"""A run's folder, as laid out in this module's docstring: what every run-store function takes."""

STATES = ("queued", "running", "completed", "diverged", "cancelled", "failed", "interrupted")
FINISHED = ("completed", "diverged", "cancelled", "failed", "interrupted")


def default_root() -> Path:
    """Where runs live: $CVDEMO_RUNS, else ./runs."""
    return Path(os.environ.get("CVDEMO_RUNS", "runs"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_or_empty(path: Path) -> dict[str, Any]:
    """A run file such as summary.json or config.json, or {} when it is missing or unreadable (a run
    still starting, or one damaged by hand): for displays that show what they can."""
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _slug(text: str, limit: int = 24) -> str:
    base = Path(text.rstrip("/")).name or text
    base = base.removesuffix(".zip")
    out = "".join(c if c.isalnum() or c in "-_" else "-" for c in base.lower()).strip("-")
    return out[:limit] or "data"


def create_run(root: Path | str, config: RunConfig) -> RunDir:
    """Make a new run folder with config.json and status `queued`; ids never collide."""
    assert isinstance(config, RunConfig)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CvdemoError(f"cannot create the runs folder {root}: {e.strerror or e}") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        run_id = f"{stamp}-{_slug(config.model.name)}-{_slug(config.data.source)}-{secrets.token_hex(2)}"
        run_dir = root / run_id
        try:
            run_dir.mkdir()  # exclusive: fails if another process took this id
        except FileExistsError:
            continue
        write_json(run_dir / "config.json", config.to_dict())
        write_status(run_dir, "queued")
        return run_dir
    raise CvdemoError(f"could not find a free run id under {root}")  # pragma: no cover


def write_status(run_dir: RunDir, state: str, message: str = "", **extra: Any) -> dict[str, Any]:
    assert state in STATES, state
    status = {"state": state, "message": message, "pid": os.getpid(), "host": socket.gethostname(),
              "updated": time.time(), **extra}
    write_json(Path(run_dir) / "status.json", status)
    return status


def process_alive(pid: int) -> bool:
    """Whether process `pid` is running (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed but not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_status(run_dir: RunDir) -> dict[str, Any]:
    """status.json as written, except that a running run whose process died reads `interrupted`."""
    path = Path(run_dir) / "status.json"
    try:
        status = read_json(path)
    except FileNotFoundError:
        return {"state": "failed", "message": "status.json is missing"}
    except (OSError, json.JSONDecodeError) as e:
        return {"state": "failed", "message": f"status.json is unreadable ({e})"}
    if status.get("state") == "running" and status.get("host") == socket.gethostname():
        pid = status.get("pid")
        if isinstance(pid, int) and not process_alive(pid):
            status = {**status, "state": "interrupted",
                      "message": "the training process stopped without finishing (killed?); "
                                 "resume it or start a new run"}
    elif status.get("state") == "queued" and (Path(run_dir) / "launch.json").exists():
        try:
            launch = read_json(Path(run_dir) / "launch.json")
        except (OSError, json.JSONDecodeError):
            launch = {}
        pid = launch.get("pid")
        if launch.get("host") == socket.gethostname() and isinstance(pid, int) and not process_alive(pid):
            # Re-read: the child may have finished writing status.json since the first read.
            status = read_json(path) if path.exists() else status
            if status.get("state") == "queued":
                status = {**status, "state": "failed",
                          "message": "the training process exited before it started; see log.txt in the run folder"}
    return status


def append_metrics(run_dir: RunDir, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def rewrite_metrics(run_dir: RunDir, records: list[dict[str, Any]]) -> None:
    """Replace metrics.jsonl atomically (a resumed run drops the lines of an unfinished epoch)."""
    write_atomic(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())


def read_metrics(run_dir: RunDir) -> list[dict[str, Any]]:
    """All complete metric lines; a half-written last line (process killed) is ignored."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@dataclass
class RunInfo:
    """What a run list shows about one run folder."""
    path: RunDir
    id: str
    state: str
    message: str
    model: str
    data: str
    epochs_done: int
    epochs: int
    best_val_top1: float | None
    test_top1: float | None
    created: float
    name: str | None = None     # the name the user gave the run, if any
    data_name: str = ""         # the data as people know it: an uploaded zip's own file name, not a server path

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["path"] = str(self.path)
        return d


def run_info(run_dir: RunDir) -> RunInfo:
    run_dir = Path(run_dir)
    try:
        config = read_json(run_dir / "config.json")
    except (OSError, json.JSONDecodeError):
        config = {}
    status = read_status(run_dir)
    epochs = [m for m in read_metrics(run_dir) if m.get("kind") == "epoch"]
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    val = [m["val_top1"] for m in epochs if m.get("val_top1") is not None]
    return RunInfo(
        path=run_dir, id=run_dir.name, state=status.get("state", "failed"), message=status.get("message", ""),
        model=config.get("model", {}).get("name", "?"), data=config.get("data", {}).get("source", "?"),
        epochs_done=len(epochs), epochs=config.get("train", {}).get("epochs", 0),
        best_val_top1=max(val) if val else None,
        test_top1=summary.get("test", {}).get("top1"),
        created=(run_dir / "config.json").stat().st_mtime if (run_dir / "config.json").exists() else 0.0,
        name=config.get("name") or None, data_name=data_display_name(config.get("data", {}).get("source", "?")),
    )


UPLOADS = "uploads"  # folder under the runs root for uploaded data (never a run: it has no config.json)
DISPLAY_NAME_SUFFIX = ".name"  # beside an upload: the file name its owner gave it (cvdemo.uploads writes it)


def data_display_name(source: str) -> str:
    """A data source as people know it: a built-in's name; a path's last part; for a file uploaded in the
    app (stored under a content hash), the name of the file its owner uploaded. Never a whole server path."""
    if "/" not in source and "\\" not in source:
        return source
    path = Path(source)
    try:
        given = path.with_name(path.name + DISPLAY_NAME_SUFFIX).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        given = ""
    return given[:120] or path.name


def list_runs(root: Path | str | None = None) -> list[RunInfo]:
    """Every run folder under root, newest first."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    runs = [run_info(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)


def run_path(run_id: str, root: Path | str | None = None) -> RunDir:
    """The folder of the run called `run_id` under root; an id that could reach outside root is refused.

    Ids come from lists, URLs and forms: only a plain folder name is one ('..', separators, a leading
    dot, control characters and over-long names are not)."""
    root = Path(root) if root is not None else default_root()
    text = str(run_id)
    if (not text or text.startswith(".") or len(text) > 200 or any(c in text for c in "/\\:")
            or any(ord(c) < 32 for c in text)):
        raise CvdemoError(f"{_short(text)} is not a run id (a folder name under {root}, as `cvdemo runs` lists): "
                          f"give the id or the run's folder")
    return root / text


def resolve_run(run: str | Path, root: Path | str | None = None) -> RunDir:
    """A run given as a path (the user's own, on the command line) or as an id under root."""
    path = Path(run)
    if not _is_run(path):
        if any(sep in str(run) for sep in "/\\") or str(run).startswith("."):
            raise CvdemoError(f"no run at {_short(str(run))}: give a run folder or a run id (see `cvdemo runs`)")
        candidate = run_path(str(run), root)
        if _is_run(candidate):
            path = candidate
        else:
            raise CvdemoError(f"no run at {_short(str(run))}: give a run folder or a run id (see `cvdemo runs`)")
    return path


def _is_run(path: Path) -> bool:
    try:
        return (path / "config.json").is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


# -- background jobs -----------------------------------------------------------------------------

def launch(config: RunConfig, root: Path | str | None = None) -> RunDir:
    """Create a run and train it in a separate process that outlives the caller (app reruns, closed tabs).

    The child's output goes to the run's `log.txt`; its progress is read from the folder.
    """
    run_dir = create_run(root if root is not None else default_root(), config)
    _train_in_background(run_dir, ["train", "--run-dir", str(run_dir)])
    return run_dir


def _train_in_background(run_dir: Path, argv: list[str]) -> None:
    """`cvdemo <argv>` in a process of its own, its output appended to the run's log.txt: the app's spare
    process when one is waiting (`cvdemo.spare`: its imports already done), else a fresh one."""
    import subprocess
    import sys

    from cvdemo import spare

    log_path = run_dir / "log.txt"
    pid = spare.hand_over(argv, log_path)
    if pid is None:
        with open(log_path, "ab") as log:
            pid = subprocess.Popen(
                [sys.executable, "-m", "cvdemo", *argv], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a Ctrl-C or a restart of the app does not reach it
            ).pid
    # A file of its own: the child may already be writing status.json.
    write_json(run_dir / "launch.json", {"pid": pid, "host": socket.gethostname(), "time": time.time()})


RESUMABLE = ("cancelled", "interrupted", "failed")


def check_resumable(run_dir: RunDir) -> None:
    """CvdemoError unless the run stopped early (cancelled, interrupted, failed) after a finished epoch."""
    run_dir = Path(run_dir)
    state = read_status(run_dir).get("state", "failed")
    if state not in RESUMABLE:
        raise CvdemoError(f"run {run_dir.name} is {state}; only cancelled, interrupted or failed runs resume")
    if not (run_dir / "last.pt").exists():
        raise CvdemoError(f"run {run_dir.name} has no finished epoch to resume from; start it again instead")


def resume_in_background(run_dir: RunDir) -> None:
    """Continue a stopped run from its last finished epoch in a process of its own (`cvdemo train --resume`),
    as `launch` starts a new one; its output is appended to the run's log.txt."""
    run_dir = Path(run_dir)
    check_resumable(run_dir)  # the process checks again; this is for the one-sentence error here
    _train_in_background(run_dir, ["train", "--resume", str(run_dir)])


class CancelledWhileQueued(CvdemoError):
    """SIGTERM reached a background run that was still waiting for a free training slot."""


def wait_for_slot(run_dir: RunDir, limit: int | None = None, poll: float = 0.25) -> IO[bytes] | None:
    """Block until this run may train: at most `limit` (default `limits.max_running()`, 0 = no limit)
    background runs under the same runs folder train at once; the others wait here, `queued`.

    A slot is an exclusive lock on `<root>/.slots/<k>.lock`, which the operating system releases when the
    process ends, however it ends (kill -9 included), so a crashed run never keeps its slot. Returns the
    open lock file, to be kept open while training (None without a limit). SIGTERM while waiting marks
    the run `cancelled` and raises CancelledWhileQueued.
    """
    import signal
    import threading

    limit = limits.max_running() if limit is None else limit
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no queue
        return None
    if limit <= 0:
        return None
    run_dir = Path(run_dir)
    folder = run_dir.parent / ".slots"
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise CvdemoError(f"cannot create {folder} to queue runs: {e.strerror or e}") from None

    def try_slots() -> IO[bytes] | None:
        for k in range(limit):
            f = open(folder / f"{k}.lock", "a+b")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return f
            except OSError:
                f.close()
        return None

    slot = try_slots()
    if slot is not None:
        return slot
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        write_status(run_dir, "queued", f"waiting for a free slot: {limit} run{'s' if limit > 1 else ''} "
                                        f"already training here (CVDEMO_MAX_RUNNING={limit})")
        while slot is None:
            if stop.wait(poll):
                write_status(run_dir, "cancelled", "cancelled while waiting for a free slot, before training "
                                                   "started; start it again when you want it")
                raise CancelledWhileQueued(f"run {run_dir.name} was cancelled while waiting for a free slot")
            slot = try_slots()
        return slot
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def slot_number(slot: IO[bytes] | None) -> int | None:
    """Which slot (0-based) a lock file from `wait_for_slot` holds, or None without one: with one slot
    per GPU, slot i trains on GPU i (`cvdemo.device.use_slot_gpu`)."""
    if slot is None:
        return None
    stem = Path(str(slot.name)).stem
    return int(stem) if stem.isdigit() else None


def cancel(run_dir: RunDir) -> bool:
    """Ask a queued or running run to stop (SIGTERM to its process); it saves and marks itself cancelled.

    Returns False when there is nothing to stop (the run already finished or its process is gone).
    """
    import signal

    status = read_status(run_dir)
    if status.get("state") not in ("queued", "running"):
        return False
    pid = status.get("pid")
    launch_path = Path(run_dir) / "launch.json"
    if status.get("state") == "queued" and launch_path.exists():
        pid = read_json(launch_path).get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not process_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def delete_run(run_dir: RunDir, root: Path | str | None = None) -> None:
    """Remove a finished run's folder. Only a real folder directly under `root` (default: the runs root)
    that holds a run is removed; anything else, or a run still queued or running, is a CvdemoError."""
    root = Path(root if root is not None else default_root()).resolve()
    path = Path(run_dir)
    if path.is_symlink() or path.resolve().parent != root or not (path / "config.json").is_file():
        raise CvdemoError(f"{path} is not a run folder under {root}; nothing was deleted")
    if read_status(path).get("state") in ("queued", "running"):
        raise CvdemoError(f"run {path.name} is still running: cancel it first, then delete it")
    shutil.rmtree(path)
