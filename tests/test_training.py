"""Training, test accuracy and prediction lines, and the ``train`` command, on tiny real data."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.test_datasets import MODELS, model_module, write_fashion_idx, write_polarity_corpus
from tfprofscale import training
from tfprofscale.cli import main
from tfprofscale.datasets import LabeledData
from tfprofscale.errors import InputError

FASHION_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def images_predicting(classes: list[int]) -> np.ndarray:
    """28x28x1 images that ``pixel_reader()`` classifies as ``classes``: pixel (0, c) lit for class c."""
    images = np.zeros((len(classes), 28, 28, 1), dtype=np.float32)
    for index, predicted in enumerate(classes):
        images[index, 0, predicted, 0] = 1.0
    return images


def pixel_reader() -> keras.Model:
    """A model whose logits are 10 x the first 10 pixels of row 0: it predicts the lit pixel's column."""
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(10, use_bias=False)
    outputs = dense(flat)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((28 * 28, 10), dtype=np.float32)
    kernel[np.arange(10), np.arange(10)] = 10.0  # flat index of pixel (0, c) is c
    dense.set_weights([kernel])
    return model


def known_image_data() -> LabeledData:
    """Test split: predictions 0..6 against labels 0,1,2,9,9,5,9 -> 4 of 7 right. Train split: all right."""
    return LabeledData(
        x_train=images_predicting([3, 4, 5, 6, 7]), y_train=np.array([3, 4, 5, 6, 7]),
        x_test=images_predicting([0, 1, 2, 3, 4, 5, 6]), y_test=np.array([0, 1, 2, 9, 9, 5, 9]),
        class_names=FASHION_NAMES,
    )


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_accuracy_is_over_exactly_the_test_split(batch_size):
    # right: examples 0, 1, 2 and 5 -> 4 / 7 (the train split, all right, must not count)
    assert training.evaluate(pixel_reader(), known_image_data(), batch_size=batch_size) == pytest.approx(4 / 7)


def test_prediction_lines_are_document_001_verdicts_for_the_first_n_test_examples():
    lines = training.prediction_lines(pixel_reader(), known_image_data(), 4)
    assert lines == [
        "CORRECT  actual: t-shirt/top | predicted: t-shirt/top",
        "CORRECT  actual: trouser | predicted: trouser",
        "CORRECT  actual: pullover | predicted: pullover",
        "WRONG  actual: ankle boot | predicted: dress",
    ]
    assert len(training.prediction_lines(pixel_reader(), known_image_data(), 100)) == 7
    assert training.prediction_lines(pixel_reader(), known_image_data(), 0) == []


def test_prediction_lines_show_the_review_for_text_data():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.eye(2, dtype=np.float32)])  # predicts the index of the larger input
    data = LabeledData(np.zeros((1, 2)), np.zeros(1, dtype=int),
                       np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 0]),
                       ["negative", "positive"], test_texts=["a dull film", "a fine film"])
    assert training.prediction_lines(model, data, 2) == [
        "CORRECT  actual: negative | predicted: negative  review: a dull film",
        "WRONG  actual: negative | predicted: positive  review: a fine film",
    ]


def test_negative_number_of_predictions():
    with pytest.raises(InputError, match="must be a non-negative integer"):
        training.prediction_lines(pixel_reader(), known_image_data(), -1)


@pytest.mark.parametrize("activation", ["softmax", None])
def test_training_minimises_categorical_cross_entropy_for_probabilities_and_logits(activation):
    # Zero kernel, bias (ln 2, 0, ..., 0): every example gets softmax p0 = 2/11, p1..p9 = 1/11, which a
    # 1e-12 learning rate leaves alone. Labels 0,0,0,1,2,3,4,5: cross-entropy per example is ln(11/2)
    # for label 0 and ln(11) otherwise, mean (3 ln 5.5 + 5 ln 11) / 8 = 2.1379. Reading the logits
    # as probabilities, or a binary cross-entropy, gives another number (Keras itself finds the
    # logits behind a softmax output). Every prediction is class 0: train accuracy 3 / 8.
    bias = keras.initializers.Constant([math.log(2)] + [0.0] * 9)
    inputs = keras.Input((28, 28, 1))
    dense = keras.layers.Dense(10, activation=activation, kernel_initializer="zeros", bias_initializer=bias)
    labels = np.array([0, 0, 0, 1, 2, 3, 4, 5])
    data = LabeledData(np.zeros((8, 28, 28, 1), np.float32), labels, np.zeros((1, 28, 28, 1), np.float32),
                       np.array([0]), FASHION_NAMES)
    result = training.train(keras.Model(inputs, dense(keras.layers.Flatten()(inputs))), data, epochs=1,
                            learning_rate=1e-12, batch_size=4, progress=False)
    expected_loss = (3 * math.log(11 / 2) + 5 * math.log(11)) / 8
    assert result.loss_per_epoch == [pytest.approx(expected_loss, rel=1e-5)]
    assert result.train_accuracy_per_epoch == [pytest.approx(3 / 8)]
    assert (result.epochs, result.batch_size, result.train_examples) == (1, 4, 8)


def test_fashion_model_trains_one_epoch_on_real_idx_files(tmp_path):
    write_fashion_idx(tmp_path, n_train=32, n_test=8)
    module = model_module("fashion_mnist")
    data = module.load_data(str(tmp_path))
    model = module.build_model()
    before = [weight.copy() for weight in model.get_weights()]
    result = training.train(model, data, epochs=1, learning_rate=0.001, batch_size=16, progress=False)
    assert len(result.loss_per_epoch) == 1 and math.isfinite(result.loss_per_epoch[0])
    assert any(not np.array_equal(old, new) for old, new in zip(before, model.get_weights()))
    accuracy = training.evaluate(model, data)
    assert accuracy in {k / 8 for k in range(9)}  # a share of the 8 test examples


@pytest.mark.parametrize("name, value", [("epochs", 0), ("learning_rate", -0.1), ("batch_size", 0)])
def test_bad_training_settings(name, value):
    settings = {"epochs": 1, "learning_rate": 0.001, "batch_size": 4, name: value}
    with pytest.raises(InputError, match=f"{name}={value}"):
        training.train(pixel_reader(), known_image_data(), progress=False, **settings)


# ---------------------------------------------------------------- the train command


def test_train_command_trains_the_text_model_and_saves_loadable_weights(tmp_path, capsys):
    write_polarity_corpus(tmp_path)
    weights = tmp_path / "text.weights.h5"
    status = main(["train", str(MODELS / "text_classifier.py"), "--data", str(tmp_path), "--epochs", "1",
                   "--dropout", "0.5", "--param", "vocab_size=40", "--save", str(weights), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "1 epoch(s) on 8 examples" in out and "over 2 examples" in out  # 10 reviews: 8 train, 2 test
    assert "--param dropout=0.5" in out and "--param vocab_size=40" in out
    fresh = model_module("text_classifier").build_model(vocab_size=40, dropout=0.5)
    initial = [array.copy() for array in fresh.get_weights()]
    fresh.load_weights(weights)
    # the file carries values of its own: loading replaces the fresh model's random initial weights
    assert any(not np.array_equal(old, new) for old, new in zip(initial, fresh.get_weights()))


def test_train_command_on_fashion_idx_with_data_from_environment(tmp_path, capsys, monkeypatch):
    write_fashion_idx(tmp_path, n_train=24, n_test=6)
    monkeypatch.setenv("TFPROFSCALE_DATA", str(tmp_path))
    status = main(["train", str(MODELS / "fashion_mnist.py"), "--epochs", "1", "--batch-size", "8", "--quiet"])
    assert status == 0
    assert "1 epoch(s) on 24 examples" in capsys.readouterr().out


def _run_expecting_input_error(argv: list[str], capsys) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    return err


def test_train_command_corrupt_idx_file(tmp_path, capsys):
    write_fashion_idx(tmp_path, n_train=4, n_test=2)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x08\x03" + path.read_bytes()[2:])
    err = _run_expecting_input_error(["train", str(MODELS / "fashion_mnist.py"), "--data", str(tmp_path)], capsys)
    assert "t10k-labels-idx1-ubyte: wrong magic number" in err


def test_train_command_empty_corpus(tmp_path, capsys):
    write_polarity_corpus(tmp_path)
    (tmp_path / "rt-polarity.neg").write_text("")
    err = _run_expecting_input_error(["train", str(MODELS / "text_classifier.py"), "--data", str(tmp_path)], capsys)
    assert "rt-polarity.neg: empty corpus file" in err


def test_train_command_rejects_bad_save_name_before_training(tmp_path, capsys):
    err = _run_expecting_input_error(["train", str(MODELS / "fashion_mnist.py"), "--data", str(tmp_path),
                                      "--save", str(tmp_path / "model.h5")], capsys)
    assert "must end in .weights.h5" in err


def test_train_command_model_without_data(tmp_path, capsys):
    err = _run_expecting_input_error(["train", str(MODELS / "generated_cnn.py"), "--data", str(tmp_path)], capsys)
    assert "has no load_data" in err


def test_train_command_without_data_directory(capsys, monkeypatch):
    monkeypatch.delenv("TFPROFSCALE_DATA", raising=False)
    err = _run_expecting_input_error(["train", str(MODELS / "fashion_mnist.py")], capsys)
    assert "no data directory" in err
