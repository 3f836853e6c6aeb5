"""The one rule for which checkpoint a run answers with: best.pt, else last.pt."""

import pytest

from cvdemo.checkpoint import checkpoint_path, has_checkpoint
from cvdemo.errors import CheckpointError, ConfigError


def test_best_is_preferred_and_falls_back_to_last(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path) == (tmp_path / "last.pt", "last")
    (tmp_path / "best.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path) == (tmp_path / "best.pt", "best")
    assert checkpoint_path(tmp_path, "last") == (tmp_path / "last.pt", "last")


def test_last_never_falls_back_to_best(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no last.pt yet"):
        checkpoint_path(tmp_path, "last")
    assert has_checkpoint(tmp_path) and not has_checkpoint(tmp_path, "last")


def test_a_run_without_checkpoints_and_a_bad_name_are_user_errors(tmp_path):
    with pytest.raises(CheckpointError, match=f"run {tmp_path.name} has no best.pt yet"):
        checkpoint_path(tmp_path)
    assert not has_checkpoint(tmp_path)
    (tmp_path / "best.pt").mkdir()  # a folder is not a checkpoint
    assert not has_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="checkpoint must be one of best, last"):
        checkpoint_path(tmp_path, "final")
