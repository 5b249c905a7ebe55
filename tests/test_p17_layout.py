"""Document 001's printed layout (layout=p17): shapes worked out by hand from the document."""
import itertools

import numpy as np
import pytest

from tfprofscale.errors import InputError
from tfprofscale.p17_layout import p17_stack
from tests.test_models import model_module


def shapes(model, names):
    return [tuple(model.get_layer(name).output.shape[1:]) for name in names]


def test_fashion_p17_four_layers_is_the_printed_structure():
    model = model_module("fashion_mnist").build_model(layout="p17")
    # document 001: conv (None, 26, 1, 64), pool (None, 1, 1, 64); kernel 3 x 28 'valid'
    assert shapes(model, ["conv0", "pool0", "flatten"]) == [(26, 1, 64), (1, 1, 64), (64,)]
    assert model.get_layer("conv0").kernel_size == (3, 28)
    assert model.count_params() == (3 * 28 * 1 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)


def test_text_p17_four_layers_is_the_printed_structure():
    model = model_module("text_classifier").build_model(layout="p17")
    # document 001: reshape (56, 256, 1) -> conv (None, 54, 1, 64) -> pool (None, 1, 1, 64)
    assert shapes(model, ["conv0", "pool0"]) == [(54, 1, 64), (1, 1, 64)]
    assert model.get_layer("conv0").kernel_size == (3, 256)


def test_fashion_p17_six_layers_conv5_valid_convs_and_stride_one_pools():
    model = model_module("fashion_mnist").build_model(total_layers=6, conv_size=5, layout="p17")
    # 28 - 5 + 1 = 24 rows; 2x1 pool stride 1 -> 23; 5x1 valid -> 19; last pool 19x1 -> 1
    assert shapes(model, ["conv0", "pool0", "conv1", "pool1"]) == [
        (24, 1, 64), (23, 1, 64), (19, 1, 64), (1, 1, 64)]
    assert model.get_layer("conv1").padding == "valid"


def test_fashion_p17_ten_layers_conv8_falls_back_to_same_where_valid_cannot_fit():
    # 28 - 8 + 1 = 21 -> pool 20 -> conv 13 -> pool 12 -> conv 5 -> pool 4 -> conv: 4 < 8 rows, 'same' keeps 4
    model = model_module("fashion_mnist").build_model(total_layers=10, conv_size=8, layout="p17")
    assert [model.get_layer(f"conv{i}").output.shape[1] for i in range(4)] == [21, 13, 5, 4]
    assert [model.get_layer(f"conv{i}").padding for i in range(4)] == ["valid", "valid", "valid", "same"]
    assert shapes(model, ["pool3"]) == [(1, 1, 64)]


@pytest.mark.parametrize("total_layers, conv_size", list(itertools.product([4, 6, 8, 10], [3, 5, 8])))
def test_p17_grid_builds_and_runs_for_both_classifiers(total_layers, conv_size):
    images = model_module("fashion_mnist").build_model(total_layers, conv_size, layout="p17")
    assert images(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)
    text = model_module("text_classifier")
    tokens = text.build_model(total_layers, conv_size, layout="p17", vocab_size=50)
    assert tokens(np.zeros((1, 56), np.int32)).shape == (1, 2)


def test_unknown_layout_names_the_choices():
    with pytest.raises(InputError, match=r"layout='wide': must be one of square, p17"):
        model_module("fashion_mnist").build_model(layout="wide")
    with pytest.raises(InputError, match=r"layout='square': must be one of kim, p17"):
        model_module("text_classifier").build_model(layout="square")


def test_stack_too_deep_for_stride_one_pools_is_refused():
    # 4 rows, conv 3 -> 2 rows; pool -> 1; conv 'same' keeps 1; a second 2x1 pool meets 1 row
    with pytest.raises(InputError, match="pool1 meets a map 1 row tall"):
        p17_stack(height=4, width=4, conv_size=3, pairs=3)
