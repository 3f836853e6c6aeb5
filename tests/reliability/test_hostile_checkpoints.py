"""Hostile checkpoints in a run folder: through `Classifier.from_run` (what `cvdemo predict`, evaluate,
export and the Classify page use), through resume, and through the real CLI. A checkpoint is only ever
read with torch.load(weights_only=True): a pickle payload must be refused and must never run."""

from __future__ import annotations

import pytest
import torch
from helpers import cvdemo
from hostile import assert_cli_error, assert_sentence, class_image, snapshot

from cvdemo import runs
from cvdemo.checkpoint import load_checkpoint, save_checkpoint
from cvdemo.config import RunConfig
from cvdemo.errors import CheckpointError
from cvdemo.predict import Classifier
from cvdemo.train.job import run_training


class Payload:
    """Unpickling this calls open(marker, "w"): the file appears if the payload ever runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def good(run_dir, which="best.pt") -> dict:
    return load_checkpoint(run_dir / which)


def plant(run_dir, which: str, content) -> None:
    """Replace a checkpoint: bytes as they are, or a dict saved as a cvdemo checkpoint."""
    path = run_dir / which
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        save_checkpoint(path, content)


def edited(**changes):
    return lambda ckpt, tmp: {**ckpt, **changes}


def evil(ckpt, tmp):
    buf = __import__("io").BytesIO()
    torch.save({**ckpt, "note": Payload(tmp / "pwned")}, buf)
    return buf.getvalue()


def truncated(ckpt, tmp):
    buf = __import__("io").BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def foreign_zip(ckpt, tmp):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cat/1.png", class_image(0, 0))
    return buf.getvalue()


def plain_state_dict(ckpt, tmp):
    import io

    buf = io.BytesIO()
    torch.save(ckpt["state_dict"], buf)  # what `torch.save(model.state_dict())` elsewhere gives
    return buf.getvalue()


def other_architecture(ckpt, tmp):
    return {**ckpt, "model": "lenet_custom"}  # LeNet's weights, labelled as another network


def other_class_count(ckpt, tmp):
    return {**ckpt, "num_classes": 3, "classes": ["a", "b", "c"]}


# id, how to turn the good best.pt into the bad one, what the sentence says is wrong, what it says to do
BAD_CHECKPOINTS = [
    ("pickle-payload", evil, "holds Python objects besides weights and was refused for safety",
     "use only checkpoints written by cvdemo"),
    ("truncated", truncated, "is damaged or not a PyTorch file", "train the run again"),
    ("zero-bytes", lambda c, t: b"", "is damaged or not a PyTorch file (it is empty)", "train the run again"),
    ("text-file", lambda c, t: b"version https://git-lfs.github.com/spec/v1\n", "is damaged or not a PyTorch file",
     "restore the file from a copy"),
    ("zip-of-images", foreign_zip, "is damaged or not a PyTorch file", "train the run again"),
    ("plain-state-dict", plain_state_dict, "best.pt is not a cvdemo checkpoint", "train a run with cvdemo"),
    ("other-architecture", other_architecture, "does not fit architecture lenet_custom with 10 classes",
     "use it with the run that made it"),
    ("other-class-count", other_class_count, "fc.weight is [10, 84] there but [3, 84] here",
     "saved from another architecture or class count"),
    ("class-names-mismatch", edited(classes=["a", "b"]), "names 2 classes but its head has 10", "train the run again"),
    ("billion-classes", edited(num_classes=10**9, classes=[]), "class count of '1000000000'", "train the run again"),
    ("unknown-architecture", edited(model="gpt5"), "unknown model 'gpt5'", "choose one of lenet"),
    ("wrong-types", edited(image_size="large"), "input size of 'large' pixels", "train the run again"),
    ("zero-std", edited(std=[0.0]), "unusable normalisation std", "train the run again"),
    ("unknown-option", edited(model_kwargs={"exec": "rm -rf /"}), "lenet has no option exec", "cannot be used"),
    ("no-weights", edited(state_dict={"w": "not a tensor"}), "holds no weights", "train the run again"),
]


@pytest.mark.parametrize("make, what, todo", [b[1:] for b in BAD_CHECKPOINTS], ids=[b[0] for b in BAD_CHECKPOINTS])
def test_bad_checkpoint_is_one_sentence_and_never_runs_code(copy_run, tmp_path, make, what, todo):
    run_dir = copy_run("victim")
    plant(run_dir, "best.pt", make(good(run_dir), tmp_path))
    with pytest.raises(CheckpointError) as err:
        Classifier.from_run(run_dir)
    assert_sentence(err.value, what, todo)
    assert not (tmp_path / "pwned").exists()


def resumable_copy(copy_run, name="paused"):
    run_dir = copy_run(name)
    runs.write_status(run_dir, "cancelled", "stopped on request")
    return run_dir, RunConfig.from_json_file(run_dir / "config.json").replace(train={"epochs": 2})


@pytest.mark.parametrize("make, what", [
    (evil, "refused for safety"),
    (truncated, "is damaged or not a PyTorch file"),
    (other_architecture, "last.pt of run paused was saved by lenet_custom, but the run's config.json now asks for lenet"),
    (edited(step=-3), "has no training position ('step')"),
    (edited(optimizer=None), "holds no optimizer state to resume from"),
], ids=["pickle-payload", "truncated", "other-architecture", "bad-position", "no-optimizer"])
def test_resume_from_a_bad_last_checkpoint_leaves_the_run_as_it_was(copy_run, tmp_path, make, what):
    run_dir, config = resumable_copy(copy_run)
    plant(run_dir, "last.pt", make(good(run_dir, "last.pt"), tmp_path))
    before = snapshot(run_dir)
    with pytest.raises(CheckpointError) as err:
        run_training(config, run_dir, resume=True)
    assert_sentence(err.value, what)
    assert snapshot(run_dir) == before  # checked before anything is written
    assert not (tmp_path / "pwned").exists()


def test_resume_with_a_checkpoint_of_another_class_count_fails_with_a_sentence(copy_run, tmp_path):
    """A 3-class head (say, last.pt copied over from another run) cannot continue a 10-class run."""
    run_dir, config = resumable_copy(copy_run)
    last = good(run_dir, "last.pt")
    weights = {k: (v[:3] if k.startswith("fc.") else v) for k, v in last["state_dict"].items()}
    plant(run_dir, "last.pt", {**last, "state_dict": weights})
    with pytest.raises(CheckpointError) as err:
        run_training(config, run_dir, resume=True)
    assert_sentence(err.value, "last.pt of run paused does not fit lenet with 10 classes (the run's data)",
                    "fc.weight is [3, 84] there but [10, 84] here", "another architecture or class count")
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "does not fit" in status["message"]


def test_cli_predict_with_a_pickle_payload_refuses_and_runs_nothing(copy_run, tmp_path):
    run_dir = copy_run("trojan")
    plant(run_dir, "best.pt", evil(good(run_dir), tmp_path))
    (tmp_path / "x.png").write_bytes(class_image(0, 0))
    proc = cvdemo("predict", str(run_dir), str(tmp_path / "x.png"), timeout=120)
    assert_cli_error(proc, "predict", "refused for safety", "never load this file with plain torch.load")
    assert not (tmp_path / "pwned").exists()


def test_cli_resume_with_a_pickle_payload_refuses_and_leaves_the_run(copy_run, tmp_path):
    run_dir, _ = resumable_copy(copy_run, "trojan")
    plant(run_dir, "last.pt", evil(good(run_dir, "last.pt"), tmp_path))
    before = snapshot(run_dir)
    proc = cvdemo("train", "--resume", str(run_dir), timeout=120)
    assert_cli_error(proc, "train", "last.pt holds Python objects besides weights and was refused for safety")
    assert not (tmp_path / "pwned").exists()
    assert snapshot(run_dir) == before


def test_absurd_class_count_is_refused_before_any_model_is_built(copy_run, tmp_path, monkeypatch):
    import cvdemo.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built from the checkpoint's claims before they were checked")

    run_dir = copy_run("victim")
    make = dict((b[0], b[1]) for b in BAD_CHECKPOINTS)["billion-classes"]
    plant(run_dir, "best.pt", make(good(run_dir), tmp_path))
    monkeypatch.setattr(cvdemo.models, "create_model", no_model)
    with pytest.raises(CheckpointError, match="1000000000"):
        Classifier.from_run(run_dir)
