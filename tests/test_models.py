"""The three model families: shapes and parameter counts worked out by hand, whole grids, errors."""
from __future__ import annotations

import inspect
import itertools
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np
import pytest

from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.loading import load_model_file

MODELS = Path(__file__).resolve().parent.parent / "models"
TOTAL_LAYERS = (4, 6, 8, 10)
CONV_SIZES = (3, 5, 8)


@lru_cache(maxsize=None)
def model_module(name: str):
    """A model file imported by path, as the profiler imports it."""
    return load_model_file(MODELS / f"{name}.py").module


def layer_table(model: keras.Model) -> list[tuple[str, tuple, int]]:
    """(name, per-example output shape, parameter count) of every layer after the input."""
    return [(layer.name, tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers[1:]]


def counted_layers(model: keras.Model) -> int:
    """Layers as document 001 counts them: conv, pool and dense (not flatten, dropout, reshape...)."""
    kinds = (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.Dense)
    return sum(isinstance(layer, kinds) for layer in model.layers)


@pytest.mark.parametrize("name", ["generated_cnn", "fashion_mnist", "text_classifier"])
def test_params_are_exactly_the_build_model_defaults(name):
    module = model_module(name)
    signature = inspect.signature(module.build_model)
    assert {key: p.default for key, p in signature.parameters.items()} == module.PARAMS


# ---------------------------------------------------------------- generated CNN


def test_generated_cnn_defaults_are_document_000_example():
    # 400x400x3, 4 x (3x3 conv stride 2 'same' + 2x2 pool), 32 filters, FC 512, 2 classes:
    # side 400 -conv-> 200 -pool-> 100 -> 50 -> 25 -> 13 -> 6 -> 3 -> 1 (ceil(n/2) for conv, floor for pool)
    model = model_module("generated_cnn").build_model()
    conv0_params = 3 * 3 * 3 * 32 + 32           # document: weights 864, plus 32 biases
    conv_params = 3 * 3 * 32 * 32 + 32           # document: weights 9216, plus 32 biases
    assert layer_table(model) == [
        ("conv0", (200, 200, 32), conv0_params), ("pool0", (100, 100, 32), 0),
        ("conv1", (50, 50, 32), conv_params), ("pool1", (25, 25, 32), 0),
        ("conv2", (13, 13, 32), conv_params), ("pool2", (6, 6, 32), 0),
        ("conv3", (3, 3, 32), conv_params), ("pool3", (1, 1, 32), 0),
        ("flatten", (32,), 0),
        ("fc", (512,), 32 * 512 + 512),          # document: weights 16384
        ("logits", (2,), 512 * 2 + 2),
    ]
    # the document's total 44896 = 864 + 3 * 9216 + 16384 counts weights only, no biases and no logits layer
    assert model.count_params() == 44896 + (4 * 32 + 512) + (512 * 2 + 2)


@pytest.mark.parametrize("config, expected", [
    # 28 -5x5 valid-> 24 -pool 2-> 12 -5x5 valid-> 8 -pool 2-> 4; flatten 4*4*8 = 128
    (dict(n_layers=2, filters=8, kernel_size=5, stride=1, input_size=28, channels=1, n_classes=10, fc_units=16,
          padding="valid", pool_size=2),
     [("conv0", (24, 24, 8), 5 * 5 * 1 * 8 + 8), ("pool0", (12, 12, 8), 0),
      ("conv1", (8, 8, 8), 5 * 5 * 8 * 8 + 8), ("pool1", (4, 4, 8), 0),
      ("flatten", (128,), 0), ("fc", (16,), 128 * 16 + 16), ("logits", (10,), 16 * 10 + 10)]),
    # 32 -stride 3 'same'-> ceil(32/3) = 11 -pool 3-> 3; flatten 3*3*4 = 36
    (dict(n_layers=1, filters=4, kernel_size=3, stride=3, input_size=32, channels=2, n_classes=3, fc_units=5,
          padding="same", pool_size=3),
     [("conv0", (11, 11, 4), 3 * 3 * 2 * 4 + 4), ("pool0", (3, 3, 4), 0),
      ("flatten", (36,), 0), ("fc", (5,), 36 * 5 + 5), ("logits", (3,), 5 * 3 + 3)]),
], ids=["valid_padding_stride_one", "pool_three_stride_three"])
def test_generated_cnn_layers(config, expected):
    model = model_module("generated_cnn").build_model(**config)
    assert layer_table(model) == expected
    assert model.count_params() == sum(params for _, _, params in expected)


def _keras_pool_sides(n_layers, kernel_size, stride, input_size, padding, pool_size):
    """Keras's own shape inference for the same stack, with no checks: pool output sides."""
    tensor = keras.Input((input_size, input_size, 1))
    sides = []
    for _ in range(n_layers):
        tensor = keras.layers.Conv2D(1, kernel_size, strides=stride, padding=padding)(tensor)
        tensor = keras.layers.MaxPooling2D(pool_size, strides=pool_size)(tensor)
        sides.append(tensor.shape[1])
    return sides


GRID = list(itertools.product((1, 2, 3, 4, 5), (1, 3, 5), (1, 2), ("same", "valid")))


@pytest.mark.parametrize("n_layers, kernel_size, stride, padding", GRID)
def test_generated_cnn_grid_builds_exactly_where_keras_geometry_is_positive(n_layers, kernel_size, stride, padding):
    module = model_module("generated_cnn")
    config = dict(n_layers=n_layers, filters=4, kernel_size=kernel_size, stride=stride, input_size=24,
                  channels=1, n_classes=3, fc_units=8, padding=padding, pool_size=2)
    try:
        keras_sides = _keras_pool_sides(n_layers, kernel_size, stride, 24, padding, 2)
        buildable = all(side > 0 for side in keras_sides)
    except ValueError:  # Keras refuses a negative size itself
        buildable = False
    if buildable:
        model = module.build_model(**config)
        assert model.output.shape[1:] == (3,)
        assert [model.get_layer(f"pool{i}").output.shape[1] for i in range(n_layers)] == keras_sides
        assert counted_layers(model) == 2 * n_layers + 2
    else:
        with pytest.raises(InputError, match=r"(conv|pool)\d"):
            module.build_model(**config)


@pytest.mark.parametrize("config, message", [
    (dict(kernel_size=7, padding="valid", input_size=5),
     "kernel_size=7 is larger than the 5x5 feature map that conv0"),
    (dict(n_layers=2, kernel_size=5, stride=1, padding="valid", input_size=12),
     "kernel_size=5 is larger than the 4x4 feature map that conv1"),  # 12 -> 8 -> 4, then 5x5
    (dict(n_layers=5), "n_layers=5 is too deep: pool4 (layer 5) meets a 1x1 feature map"),  # 1 after 4 layers
    (dict(filters=0), "filters=0: must be a positive integer"),
    (dict(stride=-1), "stride=-1: must be a positive integer"),
    (dict(input_size=2.5), "input_size=2.5: must be a positive integer"),
    (dict(padding="full"), "padding='full': must be one of same, valid"),
])
def test_generated_cnn_unbuildable_configurations_name_parameter_and_layer(config, message):
    with pytest.raises(InputError) as error:
        model_module("generated_cnn").build_model(**{**model_module("generated_cnn").PARAMS, **config})
    assert message in str(error.value)


def test_unbuildable_configuration_is_exit_status_2_with_one_line(capsys):
    status = main(["profile", str(MODELS / "generated_cnn.py"), "--param", "n_layers=5", "--no-trace", "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.count("\n") == 1 and "error: n_layers=5 is too deep: pool4" in stderr


# ---------------------------------------------------------------- Fashion-MNIST classifier


def test_fashion_default_is_four_layers_conv3():
    model = model_module("fashion_mnist").build_model()
    # 28x28x1 -3x3 'same', 64-> 28x28x64 -pool 2-> 14x14x64 = 12544 features
    assert layer_table(model) == [
        ("conv0", (28, 28, 64), 3 * 3 * 1 * 64 + 64), ("pool0", (14, 14, 64), 0),
        ("flatten", (12544,), 0), ("dense", (64,), 12544 * 64 + 64),
        ("dropout", (64,), 0), ("output", (10,), 64 * 10 + 10),
    ]
    assert model.count_params() == 640 + 802880 + 650


def test_fashion_six_layers_conv5():
    model = model_module("fashion_mnist").build_model(total_layers=6, conv_size=5)
    # 28 -> pool 14 -> pool 7; 7*7*64 = 3136 features
    assert layer_table(model)[:5] == [
        ("conv0", (28, 28, 64), 5 * 5 * 1 * 64 + 64), ("pool0", (14, 14, 64), 0),
        ("conv1", (14, 14, 64), 5 * 5 * 64 * 64 + 64), ("pool1", (7, 7, 64), 0),
        ("flatten", (3136,), 0),
    ]
    assert model.count_params() == 1664 + 102464 + (3136 * 64 + 64) + 650


def test_fashion_ten_layers_conv8():
    model = model_module("fashion_mnist").build_model(total_layers=10, conv_size=8)
    # 28 -> 14 -> 7 -> 3 -> 1 after four pools; 8x8 'same' convs keep each size
    sides = [model.get_layer(f"pool{i}").output.shape[1] for i in range(4)]
    assert sides == [14, 7, 3, 1]
    assert model.get_layer("flatten").output.shape[1:] == (64,)
    assert model.count_params() == (8 * 8 * 64 + 64) + 3 * (8 * 8 * 64 * 64 + 64) + (64 * 64 + 64) + 650


@pytest.mark.parametrize("total_layers, conv_size", list(itertools.product(TOTAL_LAYERS, CONV_SIZES)))
def test_fashion_grid_builds_and_runs(total_layers, conv_size):
    model = model_module("fashion_mnist").build_model(total_layers=total_layers, conv_size=conv_size)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == (total_layers - 2) // 2
    assert all(layer.kernel_size == (conv_size, conv_size) for layer in convs)
    assert counted_layers(model) == total_layers
    probabilities = np.asarray(model(np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)))
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("value, message", [
    (12, "total_layers=12 is too deep: pool4 meets a 1x1 feature map"),
    (5, "total_layers=5: must be an even integer >= 4"),
    (2, "total_layers=2: must be an even integer >= 4"),
])
def test_fashion_bad_total_layers(value, message):
    with pytest.raises(InputError, match=message):
        model_module("fashion_mnist").build_model(total_layers=value)


@pytest.mark.parametrize("name, input_maker", [
    ("fashion_mnist", lambda module: np.ones((4, 28, 28, 1), dtype=np.float32)),
    ("text_classifier", lambda module: module.example_inputs(4)),
])
def test_dropout_is_a_parameter_and_acts_in_training_only(name, input_maker):
    module = model_module(name)
    model = module.build_model(dropout=0.5)
    assert model.get_layer("dropout").rate == 0.5
    inputs = input_maker(module)
    inference = np.asarray(model(inputs, training=False))
    np.testing.assert_array_equal(inference, np.asarray(model(inputs, training=False)))
    assert not np.allclose(np.asarray(model(inputs, training=True)), inference)


def test_dropout_out_of_range():
    with pytest.raises(InputError, match=r"dropout=1.0: must be a number in \[0, 1\)"):
        model_module("fashion_mnist").build_model(dropout=1.0)


# ---------------------------------------------------------------- text classifier


def test_text_default_is_document_001_printed_structure():
    model = model_module("text_classifier").build_model()
    # document 001: (56) -> embedding (56, 256) -> reshape (56, 256, 1) -> conv (54, 1, 64)
    #   -> pool (1, 1, 64) -> flatten 64 -> dense 64 -> dropout 64 -> dense 2
    assert layer_table(model) == [
        ("embedding", (56, 256), 18765 * 256), ("reshape", (56, 256, 1), 0),
        ("conv0", (54, 1, 64), 3 * 256 * 1 * 64 + 64), ("pool0", (1, 1, 64), 0),
        ("flatten", (64,), 0), ("dense", (64,), 64 * 64 + 64),
        ("dropout", (64,), 0), ("output", (2,), 64 * 2 + 2),
    ]


def test_text_six_layers_conv5():
    model = model_module("text_classifier").build_model(total_layers=6, conv_size=5, vocab_size=100)
    # conv0 5x256 valid: 56 - 5 + 1 = 52; pool 2 -> 26; conv1 5x1 'same' 26; last pool over all 26 -> 1
    assert layer_table(model)[2:7] == [
        ("conv0", (52, 1, 64), 5 * 256 * 64 + 64), ("pool0", (26, 1, 64), 0),
        ("conv1", (26, 1, 64), 5 * 1 * 64 * 64 + 64), ("pool1", (1, 1, 64), 0),
        ("flatten", (64,), 0),
    ]
    assert model.count_params() == 100 * 256 + 81984 + 20544 + 4160 + 130


def test_text_ten_layers_conv8():
    model = model_module("text_classifier").build_model(total_layers=10, conv_size=8)
    # 56 - 8 + 1 = 49 -> 24 -> 12 -> 6 -> (max over all 6) 1
    heights = [model.get_layer(f"conv{i}").output.shape[1] for i in range(4)]
    assert heights == [49, 24, 12, 6]
    assert model.get_layer("pool3").output.shape[1:] == (1, 1, 64)
    assert model.count_params() == (18765 * 256 + (8 * 256 * 64 + 64) + 3 * (8 * 64 * 64 + 64)
                                    + (64 * 64 + 64) + 130)


@pytest.mark.parametrize("total_layers, conv_size", list(itertools.product(TOTAL_LAYERS, CONV_SIZES)))
def test_text_grid_builds_and_runs_on_example_inputs(total_layers, conv_size):
    module = model_module("text_classifier")
    model = module.build_model(total_layers=total_layers, conv_size=conv_size)
    assert counted_layers(model) == total_layers
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.kernel_size for layer in convs] == [(conv_size, 256)] + [(conv_size, 1)] * (len(convs) - 1)
    assert model.get_layer("flatten").output.shape[1:] == (64,)
    assert np.asarray(model(module.example_inputs(3))).shape == (3, 2)


def test_text_example_inputs_are_token_ids_in_range():
    ids = model_module("text_classifier").example_inputs(5, vocab_size=7, sequence_length=9)
    assert ids.shape == (5, 9) and ids.dtype == np.int32
    assert ids.min() >= 0 and ids.max() < 7


@pytest.mark.parametrize("config, message", [
    (dict(total_layers=16), "total_layers=16 is too deep: pool5 meets a sequence of 1"),  # 54 27 13 6 3 1
    (dict(total_layers=7), "total_layers=7: must be an even integer >= 4"),
    (dict(conv_size=57), "conv_size=57 is longer than the 56 tokens conv0 meets"),
    (dict(vocab_size=0), "vocab_size=0: must be a positive integer"),
])
def test_text_unbuildable_configurations(config, message):
    with pytest.raises(InputError, match=message):
        model_module("text_classifier").build_model(**config)


def test_text_fourteen_layers_still_build():
    model = model_module("text_classifier").build_model(total_layers=14, vocab_size=50)
    assert counted_layers(model) == 14
