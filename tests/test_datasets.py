"""IDX files, the Fashion-MNIST loader and the sentence-polarity corpus, on small real files."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tfprofscale import datasets
from tfprofscale.datasets import build_vocabulary, read_idx, tokenize, write_idx
from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.loading import load_model_file

MODELS = Path(__file__).resolve().parent.parent / "models"


def model_module(name: str):
    """A model file imported by path, as the profiler imports it."""
    return load_model_file(MODELS / f"{name}.py").module


def write_fashion_idx(directory: Path, n_train: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Four Fashion-MNIST-layout IDX files: train gzipped, test plain. Returns what was written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for key, array in arrays.items():
        suffix = ".gz" if key.startswith("train") else ""
        write_idx(directory / (datasets.MNIST_FILE_NAMES[key] + suffix), array)
    return arrays


POSITIVE_REVIEWS = [f"a warm , funny film pos{i}" for i in range(5)]
NEGATIVE_REVIEWS = [f"a dull , tired film neg{i}" for i in range(5)]


def write_polarity_corpus(directory: Path, positive: list[str] = POSITIVE_REVIEWS,
                          negative: list[str] = NEGATIVE_REVIEWS) -> None:
    """rt-polarity.pos / rt-polarity.neg, one review per line."""
    (directory / "rt-polarity.pos").write_text("\n".join(positive) + "\n")
    (directory / "rt-polarity.neg").write_text("\n".join(negative) + "\n")


# ---------------------------------------------------------------- IDX format


def test_write_idx_produces_the_bytes_the_idx_format_specifies(tmp_path):
    path = write_idx(tmp_path / "a-idx2-ubyte", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    # 00 00, type 08 (unsigned byte), 2 dimensions; sizes 2 and 3 as big-endian uint32; data row-major
    assert path.read_bytes() == bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])


def test_read_idx_decodes_hand_written_big_endian_int32(tmp_path):
    path = tmp_path / "ints-idx1-int"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + (258).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True))
    assert read_idx(path).tolist() == [258, -1]


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trips_exactly(tmp_path, name, dtype):
    original = (np.random.default_rng(1).normal(size=(3, 4, 5)) * 100).astype(dtype)
    back = read_idx(write_idx(tmp_path / name, original))
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, original)


def test_gzipped_file_is_really_gzip(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8))
    assert gzip.decompress(path.read_bytes()) == bytes([0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 3])


def _valid_idx_bytes() -> bytes:
    return bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2, 9, 8, 7, 6])


@pytest.mark.parametrize("raw, message", [
    (_valid_idx_bytes()[:-1], "truncated: the header announces shape (2, 2) = 4 bytes of data, the file holds 3"),
    (_valid_idx_bytes() + b"\x00", "has trailing bytes"),
    (_valid_idx_bytes()[:10], "truncated IDX header"),
    (b"\x00\x00", "not an IDX file"),
    (b"\x01" + _valid_idx_bytes()[1:], "wrong magic number 0x01000802"),
    (bytes([0, 0, 0x07]) + _valid_idx_bytes()[3:], "wrong magic number 0x00000702"),
    (gzip.compress(_valid_idx_bytes())[:-6], "corrupt or truncated gzip data"),
])
def test_bad_idx_files_raise_one_clear_input_error(tmp_path, raw, message):
    path = tmp_path / "bad-idx2-ubyte"
    path.write_bytes(raw)
    with pytest.raises(InputError) as error:
        read_idx(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_idx_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_idx(tmp_path / "absent-idx1-ubyte")


# ---------------------------------------------------------------- Fashion-MNIST


def test_fashion_load_data_returns_exactly_the_pixels_and_labels_written(tmp_path):
    written = write_fashion_idx(tmp_path, n_train=6, n_test=4)
    data = model_module("fashion_mnist").load_data(str(tmp_path))
    assert data.x_train.shape == (6, 28, 28, 1) and data.x_test.shape == (4, 28, 28, 1)
    assert data.x_train.dtype == np.float32
    np.testing.assert_array_equal(np.rint(data.x_train[..., 0] * 255).astype(np.uint8), written["train_images"])
    np.testing.assert_array_equal(np.rint(data.x_test[..., 0] * 255).astype(np.uint8), written["test_images"])
    np.testing.assert_array_equal(data.y_train, written["train_labels"])
    np.testing.assert_array_equal(data.y_test, written["test_labels"])
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert data.class_names[0] == "t-shirt/top" and data.class_names[9] == "ankle boot"
    assert data.describe(0) is None


def test_fashion_data_dir_from_environment_and_subdirectory(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    written = write_fashion_idx(tmp_path / "fashion-mnist", n_train=2, n_test=3)
    monkeypatch.setenv("TFPROFSCALE_DATA", str(tmp_path))
    data = model_module("fashion_mnist").load_data()
    np.testing.assert_array_equal(data.y_test, written["test_labels"])


def test_no_data_directory_at_all(monkeypatch):
    monkeypatch.delenv("TFPROFSCALE_DATA", raising=False)
    with pytest.raises(InputError, match="no data directory: give --data DIR or set TFPROFSCALE_DATA"):
        model_module("fashion_mnist").load_data()


def test_data_directory_that_does_not_exist(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        model_module("fashion_mnist").load_data(str(tmp_path / "nowhere"))


def test_missing_fashion_file_is_named(tmp_path):
    write_fashion_idx(tmp_path, n_train=2, n_test=2)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match="no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"):
        model_module("fashion_mnist").load_data(str(tmp_path))


def test_image_label_count_mismatch(tmp_path):
    write_fashion_idx(tmp_path, n_train=6, n_test=2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(InputError, match="5 labels for the 6 images of train-images-idx3-ubyte.gz"):
        model_module("fashion_mnist").load_data(str(tmp_path))


def test_label_outside_the_ten_classes(tmp_path):
    write_fashion_idx(tmp_path, n_train=2, n_test=3)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 10, 2], dtype=np.uint8))
    with pytest.raises(InputError, match="label 10 at position 1 is not a class in 0..9"):
        model_module("fashion_mnist").load_data(str(tmp_path))


def test_images_of_the_wrong_size(tmp_path):
    write_fashion_idx(tmp_path, n_train=2, n_test=2)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 27, 28), dtype=np.uint8))
    with pytest.raises(InputError, match=r"expected unsigned-byte images of shape \(N, 28, 28\)"):
        model_module("fashion_mnist").load_data(str(tmp_path))


def test_truncated_fashion_file_fails_through_load_data(tmp_path):
    write_fashion_idx(tmp_path, n_train=2, n_test=2)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte: truncated"):
        model_module("fashion_mnist").load_data(str(tmp_path))


# ---------------------------------------------------------------- text corpus


def test_tokenize_splits_contractions_and_punctuation():
    assert tokenize("It's a dark, dull thriller!") == ["it", "'s", "a", "dark", ",", "dull", "thriller", "!"]
    assert tokenize("doesn't  work (at all)") == ["does", "n't", "work", "(", "at", "all", ")"]


def test_vocabulary_ranks_by_frequency_and_reserves_padding_and_unknown():
    # counts: b 3, a 2, c 1; room for 4 entries = <pad>, <unk>, b, a
    vocabulary = build_vocabulary([["b", "a", "b"], ["c", "b", "a"]], max_size=4)
    assert vocabulary.words == ["<pad>", "<unk>", "b", "a"]
    assert vocabulary.encode(["a", "c", "b"], 5).tolist() == [3, 1, 2, 0, 0]
    assert vocabulary.encode(["b"] * 7, 3).tolist() == [2, 2, 2]


def test_vocabulary_too_small():
    with pytest.raises(InputError, match="vocab_size=2"):
        build_vocabulary([["a"]], max_size=2)


def test_corpus_split_labels_texts_and_encoding(tmp_path):
    write_polarity_corpus(tmp_path)
    data = model_module("text_classifier").load_data(str(tmp_path))
    # 10 reviews, test fraction 0.2: 2 test, 8 train; 56 ids each
    assert data.x_train.shape == (8, 56) and data.x_test.shape == (2, 56)
    assert data.class_names == ["negative", "positive"]
    for index in range(2):
        text = data.describe(index)
        expected_label = 1 if text in POSITIVE_REVIEWS else 0
        assert text in POSITIVE_REVIEWS + NEGATIVE_REVIEWS and data.y_test[index] == expected_label
        tokens = text.split()  # 6 tokens: a, warm|dull, ",", funny|tired, film, posN|negN
        ids = data.x_test[index]
        assert (ids[:len(tokens)] > 0).all() and (ids[len(tokens):] == 0).all()
        assert ids[len(tokens) - 1] == 1  # its unique word never occurs in the training split: <unk>
    assert (data.x_train != 1).all()  # every training word is in the vocabulary


def test_corpus_labels_balance_between_splits(tmp_path):
    write_polarity_corpus(tmp_path)
    data = model_module("text_classifier").load_data(str(tmp_path))
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.bincount(labels).tolist() == [5, 5]


def test_corpus_split_is_deterministic(tmp_path):
    write_polarity_corpus(tmp_path)
    first = datasets.load_sentence_polarity(tmp_path)
    second = datasets.load_sentence_polarity(tmp_path)
    assert first.test_texts == second.test_texts
    np.testing.assert_array_equal(first.x_train, second.x_train)


def test_long_reviews_are_truncated_and_sequence_length_is_a_parameter(tmp_path):
    long_review = " ".join(f"w{i}" for i in range(60))
    write_polarity_corpus(tmp_path, positive=[long_review] * 4, negative=["short one"] * 4)
    data = model_module("text_classifier").load_data(str(tmp_path), sequence_length=10)
    assert data.x_train.shape[1] == 10
    long_rows = [row for row, label in zip(data.x_train, data.y_train) if label == 1]
    assert all((row > 1).all() for row in long_rows)  # 10 known words, no padding


def test_latin1_corpus_is_read(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes("un film tr\xe8s beau\n".encode("latin-1") * 3)
    (tmp_path / "rt-polarity.neg").write_bytes(b"bad\n" * 3)
    data = datasets.load_sentence_polarity(tmp_path)
    assert len(data.x_train) + len(data.x_test) == 6


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_corpus_file(tmp_path, content):
    write_polarity_corpus(tmp_path)
    (tmp_path / "rt-polarity.pos").write_text(content)
    with pytest.raises(InputError, match=r"rt-polarity.pos: empty corpus file"):
        model_module("text_classifier").load_data(str(tmp_path))


def test_missing_corpus_file(tmp_path):
    write_polarity_corpus(tmp_path)
    (tmp_path / "rt-polarity.neg").unlink()
    with pytest.raises(InputError, match="no rt-polarity.neg"):
        model_module("text_classifier").load_data(str(tmp_path))
