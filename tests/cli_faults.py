"""Shared by the fault tests: a one-Dense model file template, and the CLI run that must fail in one line."""
from __future__ import annotations

from tfprofscale.cli import main

#: A model file with one Dense layer; ``{extra}`` is a line of code run at import (may be empty).
DENSE_TEMPLATE = """import keras
{extra}


def build_model():
    inputs = keras.Input((10,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs), name="dense")
"""

#: The template with nothing extra.
DENSE = DENSE_TEMPLATE.format(extra="")


def one_line_error(capsys, *argv: str) -> str:
    """Run the CLI; assert exit status 2 and exactly one line on stderr; return that line."""
    status = main(list(argv))
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    return err.strip()
