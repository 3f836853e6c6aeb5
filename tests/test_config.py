import json

import pytest

from cvdemo.config import RunConfig
from cvdemo.errors import ConfigError


def test_defaults_round_trip_through_json(tmp_path):
    cfg = RunConfig().replace(train={"milestones": [3, 6], "schedule": "multistep"}, name="lesson")
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    again = RunConfig.from_json_file(path)
    assert again == cfg
    assert again.train.milestones == (3, 6)
    assert again.name == "lesson"


@pytest.mark.parametrize("raw, fragment", [
    ({"train": {"lrr": 0.1}}, "unknown key 'lrr'"),
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"train": {"lr": -1}}, "lr must be greater than 0"),
    ({"train": {"lr": 0}}, "lr must be greater than 0"),
    ({"train": {"lr": "fast"}}, "lr must be a number"),
    ({"train": {"lr": float("nan")}}, "finite"),
    ({"train": {"epochs": 2.5}}, "epochs must be a whole number"),
    ({"train": {"epochs": True}}, "epochs must be a whole number"),
    ({"train": {"batch_size": 0}}, "batch_size must be at least 1"),
    ({"train": {"optimizer": "rmsprop"}}, "optimizer must be one of sgd, adam, adamw"),
    ({"train": {"schedule": "multistep"}}, "needs milestones"),
    ({"train": {"schedule": "multistep", "milestones": [20], "epochs": 10}}, "between 1 and"),
    ({"train": {"warmup_epochs": 10, "epochs": 10}}, "shorter than the run"),
    ({"model": {"freeze": "backbone"}}, "--pretrained"),
    ({"model": {"pretrained": "yes"}}, "true or false"),
    ({"data": {"val_fraction": 0.9}}, "at most 0.5"),
    ({"data": []}, "must be a JSON object"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_values_give_one_sentence(raw, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_bad_json_file_names_the_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"train": {"lr": 0.1,}}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.from_json_file(tmp_path / "missing.json")


def test_whole_floats_accepted_for_ints_and_ints_for_floats():
    cfg = RunConfig.from_dict(json.loads('{"train": {"epochs": 3.0, "lr": 1}}'))
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
