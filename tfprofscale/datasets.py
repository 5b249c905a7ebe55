"""Real data for the example models: IDX image files and a sentence-polarity corpus.

Reads (and, for tests and fixtures, writes) the IDX files Fashion-MNIST ships
in, gzipped or not; reads the sentence-polarity corpus (one review per line,
a positive and a negative file) into padded token-id sequences with a
vocabulary built from the training split. Nothing is downloaded: the data
directory is an argument, else the ``TFPROFSCALE_DATA`` environment
variable. Anything wrong with the data raises ``InputError`` naming the file
and what is wrong.
"""
from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfprofscale.errors import InputError

DATA_ENV_VAR = "TFPROFSCALE_DATA"

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
#: IDX allows up to 255 dimensions; images have 3 and labels 1, so more than this is a corrupt header.
MAX_IDX_DIMS = 4

MNIST_FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
POLARITY_FILE_NAMES = {"negative": "rt-polarity.neg", "positive": "rt-polarity.pos"}
PAD_TOKEN, UNKNOWN_TOKEN = "<pad>", "<unk>"


@dataclass(frozen=True)
class LabeledData:
    """A classification data set split into train and test.

    ``y_*`` hold integer class indices into ``class_names``; ``test_texts``
    (text data only) holds the original text of each test example.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    test_texts: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError("LabeledData: inputs and labels differ in length")
        if len(self.x_test) == 0:
            raise ValueError("LabeledData: the test split is empty")
        if self.test_texts is not None and len(self.test_texts) != len(self.x_test):
            raise ValueError("LabeledData: test_texts and x_test differ in length")

    def describe(self, index: int) -> str | None:
        """The text of test example ``index`` (text data), None for images."""
        return None if self.test_texts is None else self.test_texts[index]


# ---------------------------------------------------------------- IDX files


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped or plain), in native byte order."""
    path = Path(path)
    raw = _read_maybe_gzipped(path)
    dtype, dims, header_bytes = _idx_header(raw, path)
    expected_bytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    data_bytes = len(raw) - header_bytes
    if data_bytes != expected_bytes and len(dims) > MAX_IDX_DIMS:
        raise InputError(f"{path}: corrupt IDX header: byte 3 says {len(dims)} dimensions, which no data set "
                         f"tfprofscale reads has (images have 3, labels 1), and its shape {dims} does not match the "
                         f"{data_bytes:,} bytes of data")
    if data_bytes != expected_bytes:
        problem = "truncated" if data_bytes < expected_bytes else "has trailing bytes"
        raise InputError(f"{path}: {problem}: the header announces shape {dims} = {expected_bytes} bytes "
                         f"of data, the file holds {data_bytes}")
    array = np.frombuffer(raw, dtype=dtype, offset=header_bytes).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _idx_header(raw: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The element type, the dimensions and the header length of IDX bytes; InputError if malformed."""
    if len(raw) < 4:
        raise InputError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise InputError(
            f"{path}: wrong magic number 0x{raw[:4].hex()}: an IDX file starts with 00 00, "
            f"a type code ({', '.join(f'{code:02x}' for code in IDX_DTYPES)}) and a dimension count >= 1"
        )
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise InputError(f"{path}: truncated IDX header: {ndim} dimensions need {header_bytes} bytes, "
                         f"the file has {len(raw)}")
    return IDX_DTYPES[type_code], struct.unpack(f">{ndim}I", raw[4:header_bytes]), header_bytes


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file; gzipped when the name ends in ``.gz``."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError("IDX needs at least one dimension")
    header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(native.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)
    return path


def _read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: corrupt or truncated gzip data: {error}") from None


# ---------------------------------------------------------------- locating data


def resolve_data_dir(directory: str | os.PathLike | None) -> Path:
    """The data directory: ``directory`` if given, else ``$TFPROFSCALE_DATA``."""
    if directory is None:
        directory = os.environ.get(DATA_ENV_VAR) or None
    if directory is None:
        raise InputError(f"no data directory: give --data DIR or set {DATA_ENV_VAR}")
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"data directory {path}: {'not a directory' if path.exists() else 'does not exist'}")
    return path


def find_data_file(directory: Path, name: str, subdirectory: str, allow_gzip: bool = False) -> Path:
    """``directory/name`` or ``directory/subdirectory/name`` (or ``name.gz``), whichever exists."""
    candidates = [folder / file for folder in (directory, directory / subdirectory)
                  for file in ((name, name + ".gz") if allow_gzip else (name,))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    wanted = f"{name} or {name}.gz" if allow_gzip else name
    raise InputError(f"data directory {directory}: no {wanted} (looked in it and in {subdirectory}/)")


# ---------------------------------------------------------------- image data


def load_idx_images(directory: str | os.PathLike | None, class_names: list[str],
                    image_shape: tuple[int, int], subdirectory: str) -> LabeledData:
    """An MNIST-layout data set (four IDX files) as float images in [0, 1] with a channel axis."""
    root = resolve_data_dir(directory)
    paths = {key: find_data_file(root, name, subdirectory, allow_gzip=True) for key, name in MNIST_FILE_NAMES.items()}
    x_train, y_train = _read_image_label_pair(paths["train_images"], paths["train_labels"], image_shape, len(class_names))
    x_test, y_test = _read_image_label_pair(paths["test_images"], paths["test_labels"], image_shape, len(class_names))
    return LabeledData(x_train, y_train, x_test, y_test, list(class_names))


def _read_image_label_pair(images_path: Path, labels_path: Path, image_shape: tuple[int, int],
                           n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked images (N, H, W, 1) float32 / 255 and labels (N,) int32."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != tuple(image_shape) or images.dtype != np.uint8:
        raise InputError(f"{images_path}: expected unsigned-byte images of shape (N, {image_shape[0]}, {image_shape[1]}), "
                         f"found {images.dtype} of shape {images.shape}")
    if labels.ndim != 1:
        raise InputError(f"{labels_path}: expected a 1-dimensional label file, found shape {labels.shape}")
    if len(images) != len(labels):
        raise InputError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path.name}")
    if len(labels) == 0:
        raise InputError(f"{images_path}: holds no images")
    out_of_range = (labels < 0) | (labels >= n_classes)
    if out_of_range.any():
        position = int(np.argmax(out_of_range))
        raise InputError(f"{labels_path}: label {labels[position]} at position {position} is not a class in 0..{n_classes - 1}")
    return (images.astype(np.float32) / 255.0)[..., np.newaxis], labels.astype(np.int32)


# ---------------------------------------------------------------- text data


@dataclass
class Vocabulary:
    """Token <-> id: 0 is padding, 1 an unknown token, then words by frequency."""

    words: list[str]
    ids: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = {word: index for index, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str], sequence_length: int) -> np.ndarray:
        """Token ids, truncated or padded at the end to ``sequence_length``."""
        unknown = self.ids[UNKNOWN_TOKEN]
        token_ids = [self.ids.get(token, unknown) for token in tokens[:sequence_length]]
        padding = [self.ids[PAD_TOKEN]] * (sequence_length - len(token_ids))
        return np.array(token_ids + padding, dtype=np.int32)


def build_vocabulary(token_lists: list[list[str]], max_size: int) -> Vocabulary:
    """The ``max_size - 2`` most frequent tokens (ties alphabetically) after padding and unknown."""
    if max_size < 3:
        raise InputError(f"vocab_size={max_size}: needs room for padding, unknown and at least one word")
    counts = Counter(token for tokens in token_lists for token in tokens)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return Vocabulary([PAD_TOKEN, UNKNOWN_TOKEN] + ranked[: max_size - 2])


_CONTRACTIONS = re.compile(r"('s|'ve|n't|'re|'d|'ll)\b")
_PUNCTUATION = re.compile(r"([,!?()])")
_OTHER = re.compile(r"[^a-z0-9(),!?'`]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words with contractions and punctuation split off (Kim 2014's cleaning)."""
    text = _OTHER.sub(" ", text.lower())
    text = _CONTRACTIONS.sub(r" \1", text)
    return _PUNCTUATION.sub(r" \1 ", text).split()


def read_reviews(path: Path) -> list[str]:
    """The non-blank lines of a review file (UTF-8, else Latin-1 as the original corpus is)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    reviews = [line.strip() for line in text.splitlines() if line.strip()]
    if not reviews:
        raise InputError(f"{path}: empty corpus file: no reviews in it")
    return reviews


def load_sentence_polarity(directory: str | os.PathLike | None, sequence_length: int = 56,
                           vocab_size: int = 20000, test_fraction: float = 0.2, seed: int = 42,
                           subdirectory: str = "rt-polaritydata") -> LabeledData:
    """The sentence-polarity corpus as padded token ids; labels 0 negative, 1 positive.

    The test split is a seeded random ``test_fraction`` of all reviews; the
    vocabulary comes from the training split only.
    """
    if sequence_length < 1:
        raise InputError(f"sequence_length={sequence_length}: must be >= 1")
    root = resolve_data_dir(directory)
    class_names = list(POLARITY_FILE_NAMES)
    reviews, labels = [], []
    for label, name in enumerate(POLARITY_FILE_NAMES.values()):
        file_reviews = read_reviews(find_data_file(root, name, subdirectory))
        reviews += file_reviews
        labels += [label] * len(file_reviews)
    order = np.random.default_rng(seed).permutation(len(reviews))
    n_test = max(1, round(len(reviews) * test_fraction))
    test_ids, train_ids = order[:n_test], order[n_test:]
    tokens = [tokenize(review) for review in reviews]
    vocabulary = build_vocabulary([tokens[i] for i in train_ids], vocab_size)

    def encoded(ids: np.ndarray) -> np.ndarray:
        return np.stack([vocabulary.encode(tokens[i], sequence_length) for i in ids])

    y = np.array(labels, dtype=np.int32)
    return LabeledData(encoded(train_ids), y[train_ids], encoded(test_ids), y[test_ids],
                       class_names, [reviews[i] for i in test_ids])
