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
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvdemo.errors import CheckpointError, CvdemoError

STATES = ("queued", "running", "completed", "diverged", "cancelled", "failed", "interrupted")
FINISHED = ("completed", "diverged", "cancelled", "failed", "interrupted")
CHECKPOINT_FORMAT = "cvdemo-checkpoint/1"


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


def _slug(text: str, limit: int = 24) -> str:
    base = Path(text.rstrip("/")).name or text
    base = base.removesuffix(".zip")
    out = "".join(c if c.isalnum() or c in "-_" else "-" for c in base.lower()).strip("-")
    return out[:limit] or "data"


def create_run(root: Path | str, config: Any) -> Path:
    """Make a new run folder with config.json and status `queued`; ids never collide."""
    from cvdemo.config import RunConfig

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


def write_status(run_dir: Path, state: str, message: str = "", **extra: Any) -> dict[str, Any]:
    assert state in STATES, state
    status = {"state": state, "message": message, "pid": os.getpid(), "host": socket.gethostname(),
              "updated": time.time(), **extra}
    write_json(Path(run_dir) / "status.json", status)
    return status


def _process_alive(pid: int) -> bool:
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


def read_status(run_dir: Path) -> dict[str, Any]:
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
        if isinstance(pid, int) and not _process_alive(pid):
            status = {**status, "state": "interrupted",
                      "message": "the training process stopped without finishing (killed?); "
                                 "resume it or start a new run"}
    elif status.get("state") == "queued" and (Path(run_dir) / "launch.json").exists():
        try:
            launch = read_json(Path(run_dir) / "launch.json")
        except (OSError, json.JSONDecodeError):
            launch = {}
        pid = launch.get("pid")
        if launch.get("host") == socket.gethostname() and isinstance(pid, int) and not _process_alive(pid):
            # Re-read: the child may have finished writing status.json since the first read.
            status = read_json(path) if path.exists() else status
            if status.get("state") == "queued":
                status = {**status, "state": "failed",
                          "message": "the training process exited before it started; see log.txt in the run folder"}
    return status


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def rewrite_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    """Replace metrics.jsonl atomically (a resumed run drops the lines of an unfinished epoch)."""
    write_atomic(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
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
    path: Path
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

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["path"] = str(self.path)
        return d


def run_info(run_dir: Path) -> RunInfo:
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
    )


def list_runs(root: Path | str | None = None) -> list[RunInfo]:
    """Every run folder under root, newest first."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    runs = [run_info(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)


def resolve_run(run: str | Path, root: Path | str | None = None) -> Path:
    """A run given as a path or as an id under root."""
    path = Path(run)
    if not (path / "config.json").exists():
        candidate = (Path(root) if root is not None else default_root()) / str(run)
        if (candidate / "config.json").exists():
            path = candidate
        else:
            raise CvdemoError(f"no run at {run}: give a run folder (see `cvdemo runs`)")
    return path


# -- checkpoints ---------------------------------------------------------------------------------

def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: a crash mid-write keeps the old checkpoint."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buf)
    write_atomic(Path(path), buf.getvalue())


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with weights_only=True (never unpickles code); damaged or foreign files -> CheckpointError."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"checkpoint {path.name} is damaged or not a PyTorch file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path.name} holds more than weights and was refused for safety "
                              f"({str(e).splitlines()[0][:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path.name} is damaged or not a PyTorch file "
                              f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} is not a cvdemo checkpoint; train a run with cvdemo to get one")
    return ckpt


# -- background jobs -----------------------------------------------------------------------------

def launch(config: Any, root: Path | str | None = None) -> Path:
    """Create a run and train it in a separate process that outlives the caller (app reruns, closed tabs).

    The child's output goes to the run's `log.txt`; its progress is read from the folder.
    """
    import subprocess
    import sys

    run_dir = create_run(root if root is not None else default_root(), config)
    with open(run_dir / "log.txt", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cvdemo", "train", "--run-dir", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C or a restart of the app does not reach it
        )
    # A file of its own: the child may already be writing status.json.
    write_json(run_dir / "launch.json", {"pid": proc.pid, "host": socket.gethostname(), "time": time.time()})
    return run_dir


def cancel(run_dir: Path) -> bool:
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
    if not isinstance(pid, int) or pid == os.getpid() or not _process_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
