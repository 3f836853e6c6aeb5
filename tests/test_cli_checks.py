"""`cvdemo train` mistakes are caught before a run folder exists (exit 2, one sentence, no folder), and
argument mistakes are named by their subcommand (issue 18, item 12)."""

import pytest

from cvdemo import runs
from cvdemo.cli import main


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache: a needed weights download fails."""
    import cvdemo.models.weights as weights

    def no_network(url, path):
        raise OSError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights, "_download", no_network)


@pytest.mark.parametrize("flags, says", [
    (["--model", "resnet19"], "unknown model 'resnet19'"),
    (["--data", "missing/photos.zip"], "zip file missing/photos.zip does not exist"),
    (["--data", "missing/folder/"], "data folder missing/folder does not exist"),
    (["--model", "efficientnet_lite0", "--pretrained", "--freeze", "until:layer3"],
     "efficientnet_lite0 has no layer group 'layer3'"),
    (["--model", "lenet", "--group-lr-mult", "0.1,1"], "give 4 learning-rate multipliers, not 2"),
    (["--model", "resnet50", "--pretrained"], "could not download resnet50's ImageNet weights"),
    (["--model", "alexnet", "--image-size", "8"], "alexnet cannot take 8x8 images"),
])
def test_a_train_mistake_is_one_sentence_exit_2_and_leaves_no_run_folder(flags, says, offline, capsys):
    assert main(["train", *flags, "--epochs", "1"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("cvdemo train: ") and says in err and len(err.strip().splitlines()) == 1
    assert out == ""
    root = runs.default_root()
    assert not root.exists() or not any(root.iterdir())


def test_a_sweep_checks_every_arm_before_it_starts_any(capsys):
    assert main(["sweep", "--vary", "model=lenet,resnet19", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvdemo sweep: ") and "unknown model 'resnet19'" in err
    root = runs.default_root()
    assert not root.exists() or not any(p for p in root.iterdir() if (p / "config.json").exists())  # lenet never ran


def test_a_train_flag_mistake_is_named_by_the_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--epocs", "3"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "cvdemo train: unrecognized arguments: --epocs 3 (see cvdemo train --help)\n"


@pytest.mark.parametrize("args, says", [
    ([], "say whose filters to draw: a run folder or run id (see `cvdemo runs`), or --model NAME --pretrained"),
    (["some-run", "--model", "lenet", "--pretrained"], "give a run (some-run) or --model lenet --pretrained, not both"),
    (["--model", "efficientnet_lite0"], "--model without a run needs --pretrained"),
])
def test_filters_mistakes_read_as_one_clear_sentence(args, says, tmp_path, capsys):
    assert main(["filters", *args, "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cvdemo filters: {says}") and len(err.strip().splitlines()) == 1
    assert "no image" not in err and not (tmp_path / "f.png").exists()
