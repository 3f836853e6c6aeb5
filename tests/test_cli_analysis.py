"""evaluate, embed, explain and filters from the command line, as a user runs them in a fresh process."""

import csv
import json

import numpy as np
from helpers import cvdemo
from PIL import Image
from test_cli import assert_one_sentence_error, last_json


def opens_as_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert min(im.size) >= 100, im.size
        return im.size


def test_evaluate_json_and_plots_agree_with_the_training_summary(digits_run, tmp_path):
    out = last_json(cvdemo("evaluate", str(digits_run), "--plots", str(tmp_path / "plots"), "--json"))
    summary = json.loads((digits_run / "summary.json").read_text())
    assert abs(out["top1"] - summary["test"]["top1"]) < 1e-6  # same checkpoint, same test split
    assert out["top1"] <= out["top5"] <= 1
    assert np.array(out["confusion"]).sum() == out["n"] == 360
    assert np.trace(np.array(out["confusion"])) == round(out["top1"] * out["n"])
    assert [c["support"] for c in out["per_class"]] == np.array(out["confusion"]).sum(axis=1).tolist()
    assert 0 <= out["ece"] <= 1
    for wrong in out["most_wrong"]:
        assert wrong["true"] != wrong["pred"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion.png", "most_wrong.png", "per_class.png", "reliability.png"]
    for png in (tmp_path / "plots").iterdir():
        opens_as_png(png)


def test_embed_pca_3d_writes_every_test_sample_once(digits_run, tmp_path):
    out = last_json(cvdemo("embed", str(digits_run), "--method", "pca", "--dims", "3",
                           "--out", str(tmp_path / "points.csv"), "--plot", str(tmp_path / "points.png"), "--json"))
    with open(tmp_path / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["x", "y", "z", "true", "predicted", "index"]
    assert sorted(int(r["index"]) for r in rows) == list(range(360))
    variance = out["explained_variance"]
    assert len(variance) == 3 and variance == sorted(variance, reverse=True) and sum(variance) < 1
    true = np.array([int(r["true"]) for r in rows])
    predicted = np.array([int(r["predicted"]) for r in rows])
    assert (true == predicted).mean() > 0.9  # the run's own predictions, same samples
    opens_as_png(tmp_path / "points.png")


def test_explain_a_digit_with_gradcam_and_every_method(digits_run, tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray((np.kron(np.eye(8), np.ones((4, 4))) * 255).astype(np.uint8)).save(digit)
    one = last_json(cvdemo("explain", str(digits_run), str(digit), "--method", "gradcam",
                           "--out", str(tmp_path / "overlay.png"), "--json"))
    assert {"method", "target", "prob", "seconds", "out", "deletion_auc", "infidelity", "sensitivity", "road"} <= set(one)
    assert all(np.isfinite(one[k]) for k in ("infidelity", "sensitivity", "road"))
    assert one["method"] == "gradcam" and 0 <= one["target"] < 10 and 0 < one["prob"] <= 1
    opens_as_png(tmp_path / "overlay.png")
    grid = last_json(cvdemo("explain", str(digits_run), str(digit), "--method", "all", "--target", "3",
                            "--out", str(tmp_path / "grid.png"), "--json"))
    assert grid["target"] == 3
    assert len(grid["methods"]) >= 7, grid["methods"]
    width, height = opens_as_png(tmp_path / "grid.png")
    assert width > height  # a side-by-side grid, not one map


def test_filters_and_feature_maps_of_a_run(digits_run, tmp_path, cat_png):
    out = last_json(cvdemo("filters", str(digits_run), "--out", str(tmp_path / "filters.png"),
                           "--image", str(cat_png), "--maps-out", str(tmp_path / "maps.png"), "--json"))
    assert out["filters"] == 6 and out["filter_shape"] == [1, 5, 5]  # LeNet's first convolution
    opens_as_png(tmp_path / "filters.png")
    opens_as_png(tmp_path / "maps.png")


def test_analysis_mistakes_are_one_sentence(digits_run, tmp_path, cat_png):
    assert_one_sentence_error(cvdemo("evaluate", str(tmp_path), "--json"), "no run")
    assert_one_sentence_error(cvdemo("explain", str(digits_run), str(cat_png), "--method", "gradcam",
                                     "--target", "cat", "--out", str(tmp_path / "x.png")), "unknown class 'cat'")
    assert_one_sentence_error(cvdemo("explain", str(digits_run), str(cat_png), "--method", "magic",
                                     "--out", str(tmp_path / "x.png")), "magic")
    assert_one_sentence_error(cvdemo("embed", str(digits_run), "--method", "pca", "--layer", "no.such.layer",
                                     "--out", str(tmp_path / "p.csv")), "no.such.layer")
    assert not (tmp_path / "x.png").exists()
