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


# -- every problem at once (the Train form lists them all next to its Start button) ---------------

def test_config_problems_lists_every_bad_field_with_its_allowed_range():
    from cvdemo.config import config_problems

    problems = config_problems({"train": {"epochs": -5, "batch_size": 0, "lr": -1.0}, "data": {"val_fraction": 0.9}})
    by_field = {p.field: p for p in problems}
    assert list(by_field) == ["data.val_fraction", "train.epochs", "train.batch_size", "train.lr"]
    assert by_field["train.epochs"].reason == "must be at least 1, got -5"
    assert by_field["train.epochs"].allowed == "1 to 10,000"
    assert by_field["train.batch_size"].allowed == "1 to 65,536"
    assert by_field["train.lr"].allowed == "above 0 up to 1,000,000"
    assert by_field["data.val_fraction"].allowed == "above 0 up to 0.5"
    assert str(by_field["train.epochs"]) == "train.epochs must be at least 1, got -5 (allowed: 1 to 10,000)"
    too_big = config_problems({"train": {"batch_size": 100_000}})
    assert [str(p) for p in too_big] == ["train.batch_size must be at most 65536, got 100000 (allowed: 1 to 65,536)"]


def test_config_problems_names_wrong_types_choices_and_unknown_keys_without_stopping():
    from cvdemo.config import config_problems

    problems = [str(p) for p in config_problems(
        {"train": {"optimizer": "rmsprop", "milestones": "3, x", "lrr": 1}, "model": [], "colour": 1})]
    assert len(problems) == 5, problems
    assert "train.optimizer must be one of sgd, adam, adamw; got 'rmsprop'" in problems
    assert any("milestones must be a comma-separated list of whole numbers" in p for p in problems)
    assert any("model must be a JSON object" in p for p in problems)
    assert any("unknown key 'lrr' in train: did you mean 'lr'?" in p for p in problems)
    assert any("unknown key 'colour' in config" in p for p in problems)
    assert [str(p) for p in config_problems([1])] == [
        "config must be a JSON object with data, model and train sections ({...}), got a list"]


def test_config_problems_gives_every_cross_field_rule_once_the_fields_are_fine():
    from cvdemo.config import config_problems

    raw = {"train": {"schedule": "multistep", "warmup_epochs": 20.0}, "model": {"freeze": "backbone"}}
    problems = config_problems(raw)
    assert [p.field for p in problems] == ["", "", ""]
    text = " | ".join(map(str, problems))
    assert "needs milestones" in text and "shorter than the run" in text and "--pretrained" in text
    with pytest.raises(ConfigError, match="needs milestones"):   # from_dict still raises the first
        RunConfig.from_dict(raw)


@pytest.mark.parametrize("raw", [{}, RunConfig().to_dict(), {"train": {"epochs": 3, "lr": 0.1}, "name": "ok"}])
def test_config_problems_is_empty_exactly_when_the_config_parses(raw):
    from cvdemo.config import config_problems

    assert config_problems(raw) == []
    RunConfig.from_dict(raw)


def test_allowed_values_in_words():
    from cvdemo.config import allowed_values

    assert allowed_values(1, 10_000) == "1 to 10,000"
    assert allowed_values(0.0, 1e6, min_exclusive=True) == "above 0 up to 1,000,000"
    assert allowed_values(1, None) == "at least 1"
    assert allowed_values(0.0, None, min_exclusive=True) == "above 0"
    assert allowed_values(None, 0.5) == "at most 0.5"
    assert allowed_values(None, None) is None
