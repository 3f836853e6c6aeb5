"""Explanations in plain words: every catalogue method has a name and a one-line description for people,
the faithfulness checks are said in a sentence, and layers are named by their group."""

import pytest

from cvdemo.explain import BY_NAME, CATALOGUE, Faithfulness, in_words, layer_names
from cvdemo.explain.wording import group_words


def test_every_catalogue_method_has_a_display_name_and_a_description():
    displays = [m.display for m in CATALOGUE]
    assert len(set(displays)) == len(CATALOGUE)            # no two methods look alike in a legend
    for m in CATALOGUE:
        assert m.display.strip() and m.display != m.name, m.name
        assert "_" not in m.display, m.display              # a name for people, not the code's
        assert 20 <= len(m.description) <= 120 and "\n" not in m.description, m.name
        assert m.description[0].islower() and not m.description.endswith("."), m.name  # reads after "X shows"
    assert BY_NAME["gradcam"].display == "Grad-CAM" and BY_NAME["input_x_gradient"].display == "Input × gradient"


def scores(deletion: float, insertion: float | None) -> Faithfulness:
    """Faithfulness against random maps scoring 0.5 on both checks."""
    return Faithfulness(deletion, 0.5, insertion, None if insertion is None else 0.5, [], None, 10)


@pytest.mark.parametrize(("deletion", "insertion", "says"), [
    (0.2, 0.8, "lowers the confidence faster than hiding random ones, and showing them first restores it faster."),
    (0.8, 0.2, "no faster than hiding random ones, and showing them first restores it no faster."),
    (0.2, 0.2, "faster than hiding random ones, but showing them first restores it no faster."),
    (0.8, 0.8, "no faster than hiding random ones, but showing them first restores it faster."),
    (0.2, None, "lowers the confidence faster than hiding random ones."),
])
def test_the_checks_in_words_follow_the_verdict(deletion, insertion, says):
    sentence = in_words(scores(deletion, insertion))
    assert sentence.startswith("Hiding the pixels this map points at") and sentence.endswith(says)


def test_layer_groups_in_plain_words():
    assert group_words(["stem", "layer1", "layer2", "layer3", "head"]) == {
        "stem": "stem (on the pixels)", "layer1": "stage 1 (first block)", "layer2": "stage 2",
        "layer3": "stage 3 (last block)", "head": "head (the class scores)"}
    assert group_words(["conv1", "conv3_5", "head_conv"]) == {
        "conv1": "convolution 1", "conv3_5": "convolutions 3-5",
        "head_conv": "last convolution (the feature map CAM reads)"}


def test_every_convolution_of_resnet18_is_named_by_its_group():
    from cvdemo.models import create_model

    model = create_model("resnet18", 10)
    names = layer_names(model, "resnet18")
    assert names["conv1"] == "stem (on the pixels)"
    assert names["layer1.0.conv1"] == "stage 1 (first block) · conv 1 of 4"
    assert names["layer2.0.downsample.0"] == "stage 2 · conv 3 of 5"    # the shortcut's 1x1 convolution
    assert names["layer4.1.conv2"] == "stage 4 (last block) · conv 5 of 5"
    assert len(names) == 20 and all(not v.startswith("layer") for v in names.values())
    assert set(layer_names(model, None).items()) == {(p, p) for p in names}  # unknown: code


def test_cli_list_prints_each_methods_name_and_description(capsys):
    from cvdemo.cli.analysis import print_catalogue

    assert print_catalogue() == 0
    out = capsys.readouterr().out
    for m in CATALOGUE:
        assert f"{m.display}: {m.description}" in out, m.name
