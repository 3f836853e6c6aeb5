"""A data-aware input size (issue 18, item 11): small photos are not blown up to 224 px unasked."""

import pytest

from cvdemo.models.sizing import input_size_advice


def test_small_photos_for_an_imagenet_network_get_a_smaller_size_and_its_cost():
    advice = input_size_advice("efficientnet_lite0", 64)
    assert advice is not None and advice.size == 128 and advice.default == 224
    assert advice.cost_ratio == pytest.approx((224 / 128) ** 2)
    assert "64×64" in advice.message and "3.5×" in advice.message and "image size of 128" in advice.message


@pytest.mark.parametrize("model, native", [
    ("efficientnet_lite0", 200),   # close to the default already
    ("efficientnet_lite0", None),  # mixed sizes: nothing to say
    ("lenet", 8),                  # the digits on LeNet: its default 32 is already the smallest it takes
    ("lenet", 32),
])
def test_no_advice_when_the_default_suits_the_data(model, native):
    assert input_size_advice(model, native) is None


def test_the_suggestion_never_goes_below_what_the_layers_take():
    advice = input_size_advice("efficientnet_lite0", 10)
    assert advice is not None and advice.size == 56  # a quarter of 224, not 2 x 10
    assert input_size_advice("efficientnet_lite0", 10, minimum=96).size == 96
