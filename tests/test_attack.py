"""Adversarial attacks (cvdemo.explain.attack, `cvdemo attack`): Captum's FGSM and PGD on the normalised input,
kept within epsilon and inside the valid pixel range; the robustness curve of a run."""

import numpy as np
import pytest
import torch
from helpers import cvdemo
from nets import SmallCNN
from test_cli import assert_one_sentence_error, last_json

from cvdemo.errors import ConfigError
from cvdemo.explain.attack import attack, epsilon_label, magnified, parse_epsilon, perturb

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's: a different range per channel


def test_epsilon_reads_as_a_fraction_or_in_pixel_steps():
    assert parse_epsilon("0.0157") == pytest.approx(0.0157)
    assert parse_epsilon("4/255") == pytest.approx(4 / 255)
    assert parse_epsilon(" 8 / 255 ") == pytest.approx(8 / 255)
    assert parse_epsilon(0.5) == 0.5 and parse_epsilon("0") == 0.0
    assert epsilon_label(4 / 255) == "4/255 (0.0157)"
    for bad, words in (("4", "did you mean 4/255"), ("-0.1", "between 0 and 1"), ("abc", "not a number"),
                       ("1/0", "not a number"), ("nan", "between 0 and 1"), ("300", "between 0 and 1")):
        with pytest.raises(ConfigError, match=words) as e:
            parse_epsilon(bad)
        assert "\n" not in str(e.value)


def test_perturbation_stays_within_epsilon_and_the_pixel_range():
    torch.manual_seed(0)
    model = SmallCNN(5).eval()
    pixels = torch.rand(4, 3, 16, 16)
    pixels[:, :, :4] = 0.0                     # black and white areas: the attack pushes against both bounds
    pixels[:, :, -4:] = 1.0
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = (pixels - mean) / std
    labels = torch.tensor([0, 1, 2, 3])
    for method in ("fgsm", "pgd"):
        for eps in (2 / 255, 0.1):
            adv = perturb(model, x, labels, mean=MEAN, std=STD, method=method, epsilon=eps, steps=5)
            back = adv * std + mean
            assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6, method
            change = (back - pixels).abs()
            assert change.max() <= eps + 1e-6, (method, float(change.max()))
            assert change.max() >= eps * 0.5, method          # it did move
    assert torch.equal(perturb(model, x, labels, mean=MEAN, std=STD, method="pgd", epsilon=0.0), x)
    assert all(p.requires_grad for p in model.parameters())   # left as found


def test_bad_method_and_target_are_one_sentence():
    model = SmallCNN(5).eval()
    x = torch.zeros(1, 3, 16, 16)
    classes = list("abcde")
    with pytest.raises(ConfigError, match="class index from 0 to 4"):
        attack(model, x, classes, mean=MEAN, std=STD, target=7)
    with pytest.raises(ConfigError, match="unknown attack 'deepfool'"):
        attack(model, x, classes, mean=MEAN, std=STD, method="deepfool")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        attack(model, x, classes, mean=MEAN, std=STD, epsilon=4.0)


def test_magnified_noise_is_grey_where_nothing_changed():
    p = np.zeros((2, 2, 3), np.float32)
    p[0, 0] = 4 / 255
    p[1, 1] = -4 / 255
    m = magnified(p, 4 / 255)
    assert m[0, 1].tolist() == [128, 128, 128] and m[0, 0].tolist() == [255] * 3 and m[1, 1].tolist() == [0] * 3


@pytest.mark.slow
def test_pgd_fools_efficientnet_on_the_cat_within_4_of_255(cat_png):
    from cvdemo.explain.attack import attack_image
    from cvdemo.predict import Classifier, read_image_file

    clf = Classifier.pretrained("efficientnet_lite0")
    image = read_image_file(cat_png)
    eps = parse_epsilon("4/255")
    result = attack_image(clf, image, "pgd", eps)
    assert result.before[0]["class"] in {"Egyptian cat", "tabby", "tiger cat"}
    assert result.after[0]["index"] != result.before[0]["index"] and result.success
    assert result.max_change <= eps + 1e-6
    assert np.abs(result.perturbation).max() == pytest.approx(result.max_change)
    assert result.original.shape == result.adversarial.shape == (224, 224, 3)
    # the 8-bit pictures differ by at most epsilon too (plus rounding)
    assert np.abs(result.adversarial.astype(int) - result.original.astype(int)).max() <= 4 + 1
    toaster = clf.classes.index("toaster")
    aimed = attack_image(clf, image, "pgd", eps, target=toaster)
    assert aimed.after[0]["class"] == "toaster" and aimed.success and aimed.max_change <= eps + 1e-6


@pytest.mark.slow
def test_robustness_curve_falls_as_epsilon_grows(digits_run):
    from cvdemo.evaluate import evaluate_run
    from cvdemo.explain.attack import robustness_curve
    from cvdemo.progress import listening

    reports = []
    with listening(reports.append):
        curve = robustness_curve(digits_run, (0, 2 / 255, 8 / 255, 32 / 255, 64 / 255), method="fgsm")
    top1 = curve["top1"]
    assert curve["images"] == 360
    assert top1[0] == pytest.approx(evaluate_run(digits_run).top1)   # epsilon 0: the plain test top-1
    assert all(later <= earlier + 0.01 for earlier, later in zip(top1, top1[1:])), top1   # within noise
    assert top1[-1] < top1[0] - 0.3, top1
    assert reports and reports[-1]["final"] and reports[-1]["done"] == reports[-1]["total"] == 360 * 5


@pytest.mark.slow
def test_cli_attack_writes_the_figure_and_json(cat_png, digits_run, tmp_path):
    out = last_json(cvdemo("attack", "--model", "efficientnet_lite0", "--pretrained", str(cat_png), "--method",
                           "fgsm", "--epsilon", "0.0157", "--out", str(tmp_path / "fig.png"), "--json"))
    assert out["method"] == "fgsm" and out["epsilon"] == pytest.approx(0.0157) and out["target"] is None
    assert out["max_change"] <= 0.0157 + 1e-6 and len(out["before"]) == len(out["after"]) == 5
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    curve = last_json(cvdemo("attack", str(digits_run), "--curve", "--epsilons", "0,16/255", "--limit", "100",
                             "--method", "pgd", "--steps", "3", "--out", str(tmp_path / "curve.png"), "--json"))
    assert curve["images"] == 100 and len(curve["top1"]) == 2 and curve["top1"][1] < curve["top1"][0]
    assert (tmp_path / "curve.png").exists()


@pytest.mark.slow
def test_cli_attack_bad_input_is_one_sentence(cat_png, tmp_path):
    fig = str(tmp_path / "fig.png")
    assert_one_sentence_error(cvdemo("attack", "--model", "efficientnet_lite0", "--pretrained", str(cat_png),
                                     "--epsilon", "4", "--out", fig), "did you mean 4/255")
    assert_one_sentence_error(cvdemo("attack", "--model", "efficientnet_lite0", "--pretrained", str(cat_png),
                                     "--epsilon", "four", "--out", fig), "not a number")
    assert_one_sentence_error(cvdemo("attack", "--model", "efficientnet_lite0", "--pretrained", str(cat_png),
                                     "--target", "no such class", "--out", fig), "unknown class")
    assert_one_sentence_error(cvdemo("attack", "--model", "efficientnet_lite0", "--pretrained", str(cat_png),
                                     "--curve", "--out", fig), "--curve needs one run")


@pytest.mark.slow
def test_report_with_robustness_has_the_curve(digits_run, tmp_path):
    import re

    out = last_json(cvdemo("report", str(digits_run), "--robustness", "--explain", "0", "--out",
                           str(tmp_path / "report.html"), "--json"))
    html = (tmp_path / "report.html").read_text()
    assert out["bytes"] > 0 and "<h3>Robustness to adversarial noise</h3>" in html
    part = html.split("<h3>Robustness to adversarial noise</h3>", 1)[1].split("</div>", 1)[0]
    assert 'alt="top-1 against attack strength"' in part and "Not available" not in part
    cells = re.findall(r"<td>(\d+)/255</td><td>([\d.]+)%</td>", part)
    assert [c[0] for c in cells] == ["0", "1", "2", "4", "8", "16", "32", "64"]
    top1 = [float(c[1]) for c in cells]
    assert top1[-1] < top1[0] - 30, top1
    last_json(cvdemo("report", str(digits_run), "--explain", "0", "--out", str(tmp_path / "plain.html"), "--json"))
    assert "Robustness to adversarial noise" not in (tmp_path / "plain.html").read_text()   # only when asked
