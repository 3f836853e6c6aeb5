"""Evaluation: predictions stored once, every metric equal to scikit-learn's on the same predictions."""

import json
import shutil

import numpy as np
import pytest

from cvdemo import evaluate as ev


def synthetic(n=600, k=7, seed=0, absent_pred=None, absent_true=None):
    """Random but informative predictions: logits lean towards the true class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    if absent_true is not None:
        labels[labels == absent_true] = (absent_true + 1) % k
    logits = rng.normal(0, 1.0, (n, k))
    logits[np.arange(n), labels] += rng.uniform(0, 3, n)
    if absent_pred is not None:
        logits[:, absent_pred] = -50.0
    logits = logits.astype(np.float32)
    return ev.Predictions("test", "best", "0" * 16, [f"c{i}" for i in range(k)], logits,
                          ev.softmax(logits).astype(np.float32), labels.astype(np.int64), None)


@pytest.mark.parametrize("case", [{}, {"absent_pred": 2}, {"absent_true": 4}, {"absent_pred": 1, "absent_true": 1}])
def test_metrics_equal_scikit_learn(case):
    from sklearn import metrics as skm

    pred = synthetic(**case)
    r = ev.metrics(pred)
    y, p, k = pred.labels, pred.preds, len(pred.classes)
    labels = list(range(k))
    assert r.top1 == pytest.approx(skm.accuracy_score(y, p))
    for kk in (2, 3, 5):
        assert r.topk[kk] == pytest.approx(skm.top_k_accuracy_score(y, pred.probs, k=kk, labels=labels))
    assert r.macro_f1 == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
    assert r.weighted_f1 == pytest.approx(skm.f1_score(y, p, average="weighted", zero_division=0))
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    np.testing.assert_allclose([c["precision"] for c in r.per_class], prec)
    np.testing.assert_allclose([c["recall"] for c in r.per_class], rec)
    np.testing.assert_allclose([c["f1"] for c in r.per_class], f1)
    assert [c["support"] for c in r.per_class] == support.tolist()
    np.testing.assert_array_equal(r.confusion, skm.confusion_matrix(y, p, labels=labels))
    np.testing.assert_allclose(r.confusion_normalized,
                               np.nan_to_num(skm.confusion_matrix(y, p, labels=labels, normalize="true")))
    assert r.confusion.sum() == len(y)
    # torch, not scikit-learn, for the loss: log_loss clips probabilities at 1e-15, which changes the
    # answer when a true class got logit -50 (the absent_pred cases)
    import torch
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(pred.logits).double(), torch.from_numpy(y))
    assert r.loss == pytest.approx(float(expected), rel=1e-6)


def test_a_class_without_samples_and_a_class_never_predicted_score_zero_not_nan():
    from sklearn import metrics as skm

    # class 1 has no true samples (empty row), class 3 is never predicted (logit -50: empty column)
    pred = synthetic(n=200, k=5, seed=2, absent_true=1, absent_pred=3)
    r = ev.metrics(pred)
    assert 1 not in pred.labels and 3 not in pred.preds and 3 in pred.labels
    assert r.confusion.shape == (5, 5) and r.confusion[1].sum() == 0 and r.confusion[:, 3].sum() == 0
    empty, never = r.per_class[1], r.per_class[3]
    assert empty["support"] == 0 and empty["recall"] == 0.0 and empty["f1"] == 0.0
    assert never["support"] > 0 and never["precision"] == 0.0 and never["recall"] == 0.0 and never["f1"] == 0.0
    assert not np.isnan(r.confusion_normalized).any() and (r.confusion_normalized[1] == 0).all()
    # the macro F1 averages the classes that are true or predicted: class 3 (true, never predicted) counts 0
    present = set(pred.labels.tolist()) | set(pred.preds.tolist())
    assert 3 in present
    assert r.macro_f1 == pytest.approx(np.mean([c["f1"] for c in r.per_class if c["index"] in present]))
    assert r.macro_f1 == pytest.approx(skm.f1_score(pred.labels, pred.preds, average="macro", zero_division=0))


def test_top_k_at_or_above_the_class_count_is_one_and_top1_matches_the_confusion_diagonal():
    import warnings

    pred = synthetic(n=90, k=3, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "k >= n_classes" warning from scikit-learn
        r = ev.metrics(pred)
    assert r.topk[3] == r.topk[4] == r.top5 == 1.0
    assert r.topk[2] < 1.0
    assert r.top1 == pytest.approx(np.trace(r.confusion) / r.n)
    two = synthetic(n=50, k=2, seed=5)  # two classes: scikit-learn's binary form, handled
    r2 = ev.metrics(two)
    assert r2.top1 == pytest.approx(np.mean(two.preds == two.labels)) and r2.topk[2] == 1.0
    # a dead network (all logits equal): ties go to the lowest class, as argmax and the confusion matrix do
    tied = synthetic(n=30, k=4, seed=6)
    tied.logits[:] = 0.0
    tied.probs[:] = 0.25
    r3 = ev.metrics(tied)
    assert r3.top1 == pytest.approx(np.mean(tied.labels == 0)) == pytest.approx(np.trace(r3.confusion) / 30)


def test_an_empty_split_gives_nan_scores_not_an_error():
    pred = synthetic(n=0, k=4)
    r = ev.metrics(pred)
    assert r.n == 0 and r.confusion.shape == (4, 4) and r.confusion.sum() == 0
    assert np.isnan(r.top1) and np.isnan(r.macro_f1) and np.isnan(r.loss)
    assert [c["support"] for c in r.per_class] == [0, 0, 0, 0]


def test_ece_and_reliability_bins_follow_the_definition():
    rng = np.random.default_rng(1)
    n, k = 2000, 4
    probs = rng.dirichlet(np.ones(k) * 0.5, n)
    labels = rng.integers(0, k, n)
    ece, bins = ev.calibration(probs, labels)
    # reference: explicit loop over the 15 bins (lo, hi]
    conf, correct = probs.max(1), probs.argmax(1) == labels
    ref = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        inside = (conf > lo) & (conf <= hi)
        assert bins[b]["count"] == int(inside.sum())
        if inside.any():
            ref += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
            assert bins[b]["accuracy"] == pytest.approx(correct[inside].mean())
    assert ece == pytest.approx(ref)
    assert sum(b["count"] for b in bins) == n
    # every prediction 90 % sure but right 60 % of the time: ECE is exactly the 0.3 gap
    probs = np.full((10, 2), 0.1)
    probs[:, 0] = 0.9
    ece, _ = ev.calibration(probs, np.array([0] * 6 + [1] * 4))
    assert ece == pytest.approx(0.3)


def test_most_wrong_are_wrong_and_sorted():
    pred = synthetic()
    r = ev.metrics(pred, most_wrong=10)
    assert len(r.most_wrong) == 10
    conf = [w["confidence"] for w in r.most_wrong]
    assert conf == sorted(conf, reverse=True)
    wrong = pred.preds != pred.labels
    assert conf[0] == pytest.approx(pred.probs.max(1)[wrong].max())
    for w in r.most_wrong:
        assert w["true"] == pred.labels[w["index"]] != w["pred"] == pred.preds[w["index"]]


def test_evaluate_run_is_stored_once_and_matches_training(digits_run, monkeypatch):
    from sklearn.metrics import accuracy_score, confusion_matrix

    result = ev.evaluate_run(digits_run)
    summary = json.loads((digits_run / "summary.json").read_text())
    assert result.n == summary["data"]["test"] == result.confusion.sum()
    assert result.top1 == pytest.approx(summary["test"]["top1"], abs=1e-6)
    assert result.loss == pytest.approx(summary["test"]["loss"], rel=1e-4)
    p = result.predictions
    assert result.top1 == pytest.approx(accuracy_score(p.labels, p.preds))
    np.testing.assert_array_equal(result.confusion, confusion_matrix(p.labels, p.preds, labels=range(10)))
    assert p.features is not None and p.features.shape == (result.n, 84)  # LeNet's head reads 84 features

    path = ev.cache_path(digits_run, "test", "best")
    with np.load(path, allow_pickle=False) as z:  # a safe format: no pickles inside
        np.testing.assert_array_equal(z["labels"], p.labels)
    # the second call reads the file: computing again would fail here
    monkeypatch.setattr(ev, "_compute", lambda *a, **k: pytest.fail("predictions were recomputed"))
    again = ev.evaluate_run(digits_run)
    np.testing.assert_array_equal(again.predictions.logits, p.logits)


def test_a_new_checkpoint_is_evaluated_again(digits_run, tmp_path):
    from cvdemo.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "copy"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("analysis"))
    first = ev.predict_split(run)
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["state_dict"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    save_checkpoint(run / "best.pt", {k: v for k, v in ckpt.items() if k != "format"})
    second = ev.predict_split(run)
    assert second.digest == ev.file_digest(run / "best.pt") != first.digest
    assert not np.allclose(second.logits, first.logits)


def test_samples_in_a_confusion_cell_and_their_images(digits_run):
    from cvdemo.data import load_dataset

    result = ev.evaluate_run(digits_run)
    off = result.confusion.copy()
    np.fill_diagonal(off, -1)
    t, p = np.unravel_index(off.argmax(), off.shape)
    idx = ev.samples_in_cell(result, int(t), int(p))
    assert len(idx) == result.confusion[t, p] >= 1
    assert (result.predictions.labels[idx] == t).all() and (result.predictions.preds[idx] == p).all()
    conf = result.predictions.probs[idx, p]
    assert (np.diff(conf) <= 0).all()
    images = result.images(idx)
    test = load_dataset("digits").test
    assert tuple(images.shape) == (len(idx), 1, 8, 8)
    for i, j in enumerate(idx):
        assert (images[i] == test[int(j)][0]).all()
    diagonal = ev.samples_in_cell(result, 0, 0)
    assert len(diagonal) == result.confusion[0, 0]
    with pytest.raises(ev.ConfigError):
        ev.samples_in_cell(result, 10, 0)


def test_bad_split_and_missing_checkpoint_are_user_errors(digits_run, tmp_path):
    from cvdemo.errors import CvdemoError

    with pytest.raises(CvdemoError, match="split must be one of"):
        ev.evaluate_run(digits_run, split="holdout")
    empty = tmp_path / "run"
    empty.mkdir()
    shutil.copy(digits_run / "config.json", empty / "config.json")
    with pytest.raises(CvdemoError, match="no best.pt"):
        ev.evaluate_run(empty)
