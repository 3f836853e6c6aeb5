"""`cvdemo export`: a TorchScript (or ONNX) model that predicts what the run predicts, with a true model card."""

import json
import time
import zipfile

import numpy as np
import pytest
import torch
from helpers import cvdemo
from PIL import Image

from cvdemo import __version__
from cvdemo.checkpoint import load_checkpoint
from cvdemo.errors import CheckpointError
from cvdemo.evaluate import evaluate_run, load_split, predict_split, sample_images
from cvdemo.export import ExportedClassifier, export_run, is_export, onnx_input
from cvdemo.predict import Classifier, read_image_file

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit calls itself deprecated


@pytest.fixture(scope="module")
def exported(digits_run, tmp_path_factory):
    """The digits run exported by the real command line."""
    out = tmp_path_factory.mktemp("export") / "lenet-digits"
    result = cvdemo("export", str(digits_run), "--format", "torchscript", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["files"] == [str(out / "model.pt"), str(out / "model_card.json"), str(out / "model_card.md")]
    return out


def test_torchscript_gives_the_runs_probabilities_on_every_test_image(digits_run, exported):
    module = torch.jit.load(str(exported / "model.pt"))
    images, _ = load_split(digits_run, "test")
    x = sample_images(digits_run, "test", range(len(images)))      # uint8 (360, 1, 8, 8), as stored
    with torch.no_grad():
        from_uint8 = module(x).numpy()
        from_float = module(x.float() / 255).numpy()                 # [0, 1] floats: the same
    run = predict_split(digits_run, "test").probs                     # the run's own pass over the split
    assert from_uint8.shape == run.shape == (360, 10)
    assert np.abs(from_uint8 - run).max() < 1e-4
    assert np.abs(from_float - run).max() < 1e-4
    assert (from_uint8.argmax(1) == run.argmax(1)).all()


def test_images_of_any_size_and_colour_are_prepared_as_the_run_prepares_them(digits_run, exported, cat_png):
    run = Classifier.from_run(digits_run)
    export = ExportedClassifier.load(exported)
    x = sample_images(digits_run, "test", range(12))
    photos = [Image.fromarray(a[0].numpy(), "L") for a in x]
    photos += [read_image_file(cat_png),                               # 451x300 colour: shrunk, averaged to grey
               Image.fromarray(x[0, 0].numpy(), "L").resize((50, 70)).convert("RGB")]   # grown, colour
    diff = (export.probabilities(photos) - run.probabilities(photos)).abs().max()
    assert diff < 1e-4, diff
    assert export.top(photos[:1], 3)[0][0]["class"] == run.top(photos[:1], 3)[0][0]["class"]


def test_model_card_says_what_the_model_is_and_how_well_it_does(digits_run, exported):
    card = json.loads((exported / "model_card.json").read_text())
    ckpt = load_checkpoint(digits_run / "best.pt")
    r = evaluate_run(digits_run, "test", "best")
    assert card["classes"] == [str(i) for i in range(10)] and card["num_classes"] == 10
    assert card["architecture"] == "lenet" and card["model_format"] == "torchscript" and card["file"] == "model.pt"
    assert card["input"]["size"] == 32 and card["input"]["channels"] == 1
    assert card["normalization"]["mean"] == pytest.approx(ckpt["mean"])
    assert card["normalization"]["std"] == pytest.approx(ckpt["std"])
    assert card["normalization"]["baked_in"] is True
    assert card["training"]["config"] == json.loads((digits_run / "config.json").read_text())
    m = card["metrics"]
    assert (m["split"], m["checkpoint"], m["images"]) == ("test", "best", 360)
    assert m["top1"] == pytest.approx(r.top1) and m["macro_f1"] == pytest.approx(r.macro_f1)
    summary = json.loads((digits_run / "summary.json").read_text())
    assert m["top1"] == pytest.approx(summary["test"]["top1"], abs=1e-6)   # what training measured, too
    assert card["checkpoint"]["which"] == "best" and card["checkpoint"]["epoch"] == ckpt["epoch"]
    assert card["cvdemo_version"] == __version__
    assert abs(time.mktime(time.strptime(card["date"][:19], "%Y-%m-%dT%H:%M:%S")) - time.time()) < 3600
    assert card["check"]["images"] == 64 and card["check"]["max_abs_diff"] < 1e-4
    import hashlib

    assert card["sha256"] == hashlib.sha256((exported / "model.pt").read_bytes()).hexdigest()
    md = (exported / "model_card.md").read_text()
    assert md.startswith("# Model card: ") and "## Metrics (test split)" in md
    assert f"{r.top1:.1%}" in md and "0: 0, 1: 1" in md and "| train | lr | 0.003 |" in md
    with zipfile.ZipFile(exported / "model.pt") as z:  # the card travels inside the model file too
        inside = json.loads(z.read(next(n for n in z.namelist() if n.endswith("extra/model_card.json"))))
    assert inside["classes"] == card["classes"] and inside["metrics"]["top1"] == card["metrics"]["top1"]


def test_predict_reads_the_export_folder_and_the_bare_model_file(digits_run, exported, tmp_path):
    x = sample_images(digits_run, "test", [3])
    image = tmp_path / "digit.png"
    Image.fromarray(x[0, 0].numpy(), "L").save(image)
    expected = Classifier.from_run(digits_run).top([read_image_file(image)], 3)[0]
    result = cvdemo("predict", str(exported), str(image), "--topk", "3", "--json")   # the export folder
    assert result.returncode == 0, result.stderr
    tops = [json.loads(result.stdout.strip().splitlines()[-1])["predictions"][0]["top"]]
    moved = tmp_path / "elsewhere.pt"            # the file alone, away from its card and its run
    moved.write_bytes((exported / "model.pt").read_bytes())
    assert is_export(moved)
    tops.append(ExportedClassifier.load(moved).top([read_image_file(image)], 3)[0])
    for top in tops:
        assert [t["class"] for t in top] == [t["class"] for t in expected]
        assert np.allclose([t["prob"] for t in top], [t["prob"] for t in expected], atol=1e-4)


def test_a_checkpoint_or_a_foreign_torchscript_file_is_not_taken_for_an_export(digits_run, tmp_path):
    assert not is_export(digits_run / "best.pt") and not is_export(digits_run)
    with pytest.raises(CheckpointError, match="not an exported TorchScript model"):
        ExportedClassifier.load(digits_run / "best.pt")
    foreign = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(foreign))
    assert is_export(foreign)
    with pytest.raises(CheckpointError, match="no cvdemo model card"):
        ExportedClassifier.load(foreign)


def test_onnx_export_matches_the_run(digits_run, tmp_path):
    import onnx
    import onnxscript  # noqa: F401  (pinned: torch.onnx.export needs it)
    from onnx.reference import ReferenceEvaluator

    card = export_run(digits_run, tmp_path, fmt="onnx")
    assert card["file"] == "model.onnx" and (tmp_path / "model.onnx").is_file()
    assert "not included" in card["input"]["resize"] and card["input"]["accepts"] == "exactly (N, 1, 32, 32)"
    model = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(model)
    clf = Classifier.from_run(digits_run)
    x = sample_images(digits_run, "test", range(40))
    got = ReferenceEvaluator(model).run(None, {"images": onnx_input(clf, x).numpy()})[0]
    run = predict_split(digits_run, "test").probs[:40]
    assert got.shape == (40, 10) and np.abs(got - run).max() < 1e-4
    assert "## Use" in (tmp_path / "model_card.md").read_text()
    assert is_export(tmp_path)
    with pytest.raises(CheckpointError, match="holds an ONNX export"):   # what `cvdemo predict` says about it
        ExportedClassifier.load(tmp_path)


def test_onnx_export_is_checked_against_the_run_with_onnxruntime(digits_run, tmp_path):
    import onnxruntime  # pinned in requirements.txt: without it the card would say "not checked"

    card = export_run(digits_run, tmp_path, fmt="onnx")
    assert card["check"]["images"] == 64 and card["check"]["max_abs_diff"] < 1e-4, card["check"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    clf = Classifier.from_run(digits_run)
    x = sample_images(digits_run, "test", range(40))
    got = session.run(None, {"images": onnx_input(clf, x).numpy()})[0]
    assert np.abs(got - predict_split(digits_run, "test").probs[:40]).max() < 1e-4
    assert "largest difference" in (tmp_path / "model_card.md").read_text()


def test_export_refuses_an_unknown_format_and_a_run_folder_as_target(digits_run, tmp_path):
    result = cvdemo("export", str(digits_run), "--format", "tflite", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    from cvdemo.errors import CvdemoError

    with pytest.raises(CvdemoError, match="is a run folder"):
        export_run(digits_run, digits_run)
