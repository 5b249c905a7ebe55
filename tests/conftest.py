"""Shared fixtures: small model files written into a temporary directory."""
from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Machine peaks measured by the roofline are cached under XDG_CACHE_HOME: keep the tests' own, removed at the end.
TEST_CACHE = tempfile.mkdtemp(prefix="tfprofscale-test-cache-")
os.environ["XDG_CACHE_HOME"] = TEST_CACHE

try:  # Hypothesis keeps no example database, and its caches go to the tests' folder, not .hypothesis/ here
    from hypothesis import settings
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(os.path.join(TEST_CACHE, "hypothesis"))
    settings.register_profile("tfprofscale", database=None)
    settings.load_profile("tfprofscale")
except ImportError:
    pass


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the tests' cache folder: a test run leaves nothing in /tmp or in the checkout."""
    shutil.rmtree(TEST_CACHE, ignore_errors=True)

TWO_LAYER_CNN = """
    import keras

    PARAMS = {"filters": 8, "units": 3}


    def build_model(filters=8, units=3):
        inputs = keras.Input((10, 10, 1))
        x = keras.layers.Conv2D(filters, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        outputs = keras.layers.Dense(units, name="logits")(x)
        return keras.Model(inputs, outputs, name="two_layer_cnn")
"""


@pytest.fixture
def write_model(tmp_path: Path):
    """Write a model file from source text; returns its path."""

    def write(source: str, name: str = "model.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def cnn_file(write_model) -> Path:
    """The 2-layer CNN whose costs tests work out by hand."""
    return write_model(TWO_LAYER_CNN, "two_layer_cnn.py")
