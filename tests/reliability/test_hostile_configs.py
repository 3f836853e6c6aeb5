"""Hostile config files, through `RunConfig.from_json_file` (what `cvdemo train --config`, `--resume` and
the app's launched runs read) and the real CLI: each is one sentence that names the file and the field."""

from __future__ import annotations

import json

import pytest
from helpers import cvdemo
from hostile import assert_cli_error, assert_sentence

from cvdemo import runs
from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError

# id, file content, what the sentence must say (the field, what is wrong), what it says to do or expect
BAD_CONFIGS = [
    ("unknown-top-level-key", b'{"trian": {"epochs": 3}}', "unknown key 'trian' in config",
     "did you mean 'train'?"),
    ("unknown-nested-key", b'{"train": {"learning_rate": 0.1}}', "unknown key 'learning_rate' in train",
     "did you mean 'lr'?"),
    ("wrong-type-text", b'{"train": {"epochs": "ten"}}', "train.epochs must be a whole number", "got 'ten'"),
    ("wrong-type-bool", b'{"train": {"batch_size": true}}', "train.batch_size must be a whole number", "got True"),
    ("wrong-type-list", b'{"train": {"lr": [0.1]}}', "train.lr must be a number", "got [0.1]"),
    ("negative-lr", b'{"train": {"lr": -0.01}}', "train.lr must be greater than 0.0", "got -0.01"),
    ("negative-batch", b'{"train": {"batch_size": -8}}', "train.batch_size must be at least 1", "got -8"),
    ("negative-epochs", b'{"train": {"epochs": -1}}', "train.epochs must be at least 1", "got -1"),
    ("nan", b'{"train": {"lr": NaN}}', "train.lr must be a finite number", "got nan"),
    ("infinity", b'{"train": {"weight_decay": Infinity}}', "train.weight_decay must be a finite number", "got inf"),
    ("huge-number", b'{"train": {"epochs": 1e300}}', "train.epochs must be at most 10000", "got 1e+300"),
    ("fraction-out-of-range", b'{"data": {"val_fraction": 0.9}}', "data.val_fraction must be at most 0.5", "0.9"),
    ("null-required", b'{"train": {"epochs": null}}', "train.epochs must not be empty", "epochs"),
    ("not-an-object", b'[{"train": {}}]', "must be a JSON object with data, model and train sections", "got a list"),
    ("section-not-an-object", b'{"train": 5}', "train must be a JSON object of settings", "got a number"),
    ("syntax-error", b'{"train": {"lr": 0.1,}}', "is not valid JSON (line 1", "fix it"),
    ("empty-file", b"", "is not valid JSON", "fix it, or start from a run's config.json"),
    ("binary-file", bytes(range(128, 256)) * 4, "is not UTF-8 text (a binary file?)", "give a JSON text file"),
    ("deeply-nested", b"[" * 100_000 + b"]" * 100_000, "nested too deeply", "give a JSON object"),
    ("newline-in-choice", b'{"train": {"optimizer": "adam\\nrm -rf /"}}', "train.optimizer must be one of sgd, adam",
     "got 'adam\\nrm -rf /'"),
    ("bad-milestones", b'{"train": {"schedule": "multistep", "milestones": [5, 50], "epochs": 10}}',
     "milestones must lie between 1 and the number of epochs (10)", "[5, 50]"),
    ("bad-freeze", b'{"model": {"freeze": "everything"}}', "freeze must be none, backbone or until:GROUP",
     "'everything'"),
]


@pytest.mark.parametrize("content, what, detail", [b[1:] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_file_is_one_sentence_naming_the_file(tmp_path, content, what, detail):
    path = tmp_path / "lesson.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_json_file(path)
    text = assert_sentence(err.value, what, detail)
    assert text.startswith(f"config file {path}"), text


def test_config_with_a_byte_order_mark_is_fine(tmp_path):
    """Windows Notepad writes one: a legitimate file, not an error."""
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"train": {"epochs": 2}}).encode())
    assert RunConfig.from_json_file(tmp_path / "bom.json").train.epochs == 2


@pytest.mark.parametrize("content, what", [
    (b'{"train": {"learning_rate": 0.1}}', "did you mean 'lr'?"),
    (b'{"train": {"lr": NaN}}', "train.lr must be a finite number"),
], ids=["unknown-key", "nan"])
def test_cli_train_with_a_bad_config_file_is_one_line_and_starts_nothing(runs_root, tmp_path, content, what):
    (tmp_path / "bad.json").write_bytes(content)
    proc = cvdemo("train", "--config", str(tmp_path / "bad.json"), timeout=120)
    assert_cli_error(proc, "train", "bad.json", what)
    assert [r.id for r in runs.list_runs(runs_root)] == [p.name for p in runs_root.iterdir() if p.is_dir()]
    assert len(runs.list_runs(runs_root)) == 1  # only the existing run: nothing was created
