"""The sweep INI parser: document 001's file verbatim, the general form, and malformed files."""
from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.sweep.runner import config_id, expand_grid
from tfprofscale.sweep.config import load_sweep_config, parse_sweep_file

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = REPO / "models" / "fashion_mnist.py"

DOCUMENT_001 = """\
[CONFIGURATION]
Training_Iterations = 10
Batch_Size = 1 4 16 64
Tot_Layers = 4 6 8 10
Filter_Size = 3 5 8
Learning_Rate = 0.001
Dropout = 0.75
Evaluation_Iterations = 10
"""
DOCUMENT_001_KEYS = ["Training_Iterations", "Batch_Size", "Tot_Layers", "Filter_Size", "Learning_Rate",
                     "Dropout", "Evaluation_Iterations"]
INTEGER_KEYS = ["Training_Iterations", "Batch_Size", "Tot_Layers", "Filter_Size", "Evaluation_Iterations"]

GENERAL = """\
[sweep]
model = {model}
batch_size = 2 8
steps = 7
repeats = 3
warmup = 0
trace_steps = 4

[grid]
filters = 16 32
padding = same 'valid'

[training]
epochs = 2
learning_rate = 0.01
batch_size = 32
"""

TINY_MODEL = """\
PARAMS = {"filters": 8, "padding": "same", "rate": 0.5}


def build_model(filters=8, padding="same", rate=0.5):
    raise NotImplementedError("never built by these tests")
"""


def write(folder: Path, text: str, name: str = "sweep.ini") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def assert_names(error: InputError, path: Path, section: str, key: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message and f"[{section}]" in message and key in message, message


def test_document_001_file_verbatim(tmp_path):
    config = parse_sweep_file(write(tmp_path, DOCUMENT_001))
    assert config.grid == {"total_layers": [4, 6, 8, 10], "conv_size": [3, 5, 8], "dropout": [0.25]}
    assert config.batch_sizes == [1, 4, 16, 64]
    assert config.steps == 10                     # Evaluation_Iterations: timed steps
    assert config.training.epochs == 10           # Training_Iterations
    assert config.training.learning_rate == 0.001
    assert config.model is None                   # named on the command line


def test_document_001_dropout_is_a_keep_probability(tmp_path):
    config = parse_sweep_file(write(tmp_path, DOCUMENT_001.replace("Dropout = 0.75", "Dropout = 0.5")))
    assert config.grid["dropout"] == [0.5]        # rate = 1 - 0.5
    config = parse_sweep_file(write(tmp_path, DOCUMENT_001.replace("Dropout = 0.75", "Dropout = 1")))
    assert config.grid["dropout"] == [0.0]        # keep everything: no dropout


def test_document_001_with_the_model_on_the_command_line(tmp_path):
    config = load_sweep_config(write(tmp_path, DOCUMENT_001), FASHION_MNIST)
    tasks = expand_grid(config)
    assert len(tasks) == 4 * 3 * 1 * 4           # layers x conv sizes x dropout x batch sizes
    assert tasks[0].config_id == "total_layers=4,conv_size=3,dropout=0.25,batch_size=1,r0"
    assert tasks[0].params == {"total_layers": 4, "conv_size": 3, "dropout": 0.25}
    assert [t.batch_size for t in tasks[:4]] == [1, 4, 16, 64]
    assert len({t.config_id for t in tasks}) == len(tasks)


def test_document_001_needs_a_model(tmp_path):
    path = write(tmp_path, DOCUMENT_001)
    with pytest.raises(InputError, match="no model: give --model"):
        load_sweep_config(path)


def test_general_form(tmp_path):
    model = write(tmp_path, TINY_MODEL, "tiny.py")
    config = load_sweep_config(write(tmp_path, GENERAL.format(model="tiny.py")))
    assert config.model == model                  # relative to the config file's folder
    assert config.grid == {"filters": [16, 32], "padding": ["same", "valid"]}
    assert (config.batch_sizes, config.steps, config.repeats, config.warmup, config.trace_steps) == ([2, 8], 7, 3, 0, 4)
    assert (config.training.epochs, config.training.learning_rate, config.training.batch_size) == (2, 0.01, 32)
    assert len(expand_grid(config)) == 2 * 2 * 2 * 3


def test_command_line_model_overrides_the_file(tmp_path):
    other = write(tmp_path, TINY_MODEL, "other.py")
    config = load_sweep_config(write(tmp_path, GENERAL.format(model="missing.py")), other)
    assert config.model == other


def test_shipped_configs_match_their_models():
    counts = {"p17_fashion_mnist.ini": 4 * 3 * 4, "p17_text.ini": 4 * 3 * 4, "generated_cnn.ini": 3 * 3 * 2 * 2 * 2 * 2}
    for name, count in counts.items():
        assert len(expand_grid(load_sweep_config(REPO / "configs" / name))) == count


BAD_FILES = [
    # (text, section, key, fragment of the message)
    (DOCUMENT_001 + "Momentum = 0.9\n", "CONFIGURATION", "Momentum", "unknown key"),
    (DOCUMENT_001.replace("Batch_Size = 1 4 16 64", "Batch_Size ="), "CONFIGURATION", "Batch_Size", "empty list"),
    (DOCUMENT_001.replace("Tot_Layers = 4 6 8 10", "Tot_Layers = 4 six"), "CONFIGURATION", "Tot_Layers",
     "'six' is not an integer"),
    (DOCUMENT_001.replace("Filter_Size = 3 5 8", "Filter_Size = 3 5.5"), "CONFIGURATION", "Filter_Size",
     "5.5 is not an integer"),
    (DOCUMENT_001.replace("Learning_Rate = 0.001", "Learning_Rate = fast"), "CONFIGURATION", "Learning_Rate",
     "not a number"),
    (DOCUMENT_001.replace("Evaluation_Iterations = 10", "Evaluation_Iterations = 10 20"), "CONFIGURATION",
     "Evaluation_Iterations", "expected one value"),
    (DOCUMENT_001.replace("Dropout = 0.75", "Dropout = 1.5"), "CONFIGURATION", "Dropout", "keep probability"),
    (DOCUMENT_001.replace("Batch_Size = 1 4 16 64", "Batch_Size = 0 4"), "CONFIGURATION", "Batch_Size", ">= 1"),
    (DOCUMENT_001.replace("Batch_Size = 1 4 16 64", "Batch_Size = 4 4"), "CONFIGURATION", "Batch_Size",
     "listed twice"),
    (DOCUMENT_001 + "batch_size = 2\n", "CONFIGURATION", "batch_size", "given twice"),
    (DOCUMENT_001 + "[grid]\nfilters = 1\n", "grid", "", "cannot be mixed"),
    ("[sweep]\nsteps = 5\nsteps = 6\n", "sweep", "steps", "given twice"),
    ("[sweep]\nsteps = -1\n", "sweep", "steps", ">= 1"),
    ("[sweep]\nwarmup = x\n", "sweep", "warmup", "not an integer"),
    ("[sweep]\nmodle = m.py\n", "sweep", "modle", "unknown key"),
    ("[sweep]\n[grid]\nfilters =\n", "grid", "filters", "empty list"),
    ("[sweep]\n[grid]\nbatch_size = 1 2\n", "grid", "batch_size", "[sweep] batch_size"),
    ("[sweep]\n[grid]\n2filters = 1 2\n", "grid", "2filters", "not a parameter name"),
    ("[sweep]\n[training]\nepochs = 0\n", "training", "epochs", ">= 1"),
    ("[sweep]\n[results]\nx = 1\n", "results", "", "unknown section"),
]


@pytest.mark.parametrize("text, section, key, fragment", BAD_FILES)
def test_malformed_file_is_one_line_naming_file_section_and_key(tmp_path, text, section, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        parse_sweep_file(path)
    assert_names(caught.value, path, section, key)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("text, fragment", [
    ("[grid]\nfilters = 1 2\n", "missing section [sweep]"),
    ("filters = 1 2\n", "line 1: missing section header"),
    ("[sweep]\nthis line has no equals sign\n", "line 2: not a 'key = value' line"),
    ("[sweep]\n[sweep]\n", "section given twice"),
    ("[sweep]\n[Sweep]\n", "[sweep]: section given twice (also as [Sweep])"),
])
def test_file_structure_errors_name_the_file(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        parse_sweep_file(path)
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        parse_sweep_file(tmp_path / "nope.ini")
    (tmp_path / "binary.ini").write_bytes(b"\xff\xfe\x00[sweep]")
    with pytest.raises(InputError, match=r"is not a text file \(it contains NUL bytes\)"):
        parse_sweep_file(tmp_path / "binary.ini")


def test_model_checks(tmp_path):
    write(tmp_path, TINY_MODEL, "tiny.py")
    missing = write(tmp_path, "[sweep]\nmodel = gone.py\n", "missing.ini")
    with pytest.raises(InputError) as caught:
        load_sweep_config(missing)
    assert_names(caught.value, missing, "sweep", "model")
    assert "does not exist" in str(caught.value)

    unknown = write(tmp_path, "[sweep]\nmodel = tiny.py\n[grid]\nunits = 1 2\n", "unknown.ini")
    with pytest.raises(InputError) as caught:
        load_sweep_config(unknown)
    assert_names(caught.value, unknown, "grid", "units")
    assert "no parameter 'units'" in str(caught.value)

    wrong_type = write(tmp_path, "[sweep]\nmodel = tiny.py\n[grid]\nfilters = 8 wide\n", "type.ini")
    with pytest.raises(InputError) as caught:
        load_sweep_config(wrong_type)
    assert_names(caught.value, wrong_type, "grid", "filters")
    assert "'wide' is a str, but filters takes a int" in str(caught.value)


def test_document_001_key_is_named_when_the_model_lacks_the_parameter(tmp_path):
    path = write(tmp_path, DOCUMENT_001)
    no_dropout = write(tmp_path, "PARAMS = {'total_layers': 4, 'conv_size': 3}\n"
                                 "def build_model(total_layers=4, conv_size=3):\n    pass\n", "nodrop.py")
    with pytest.raises(InputError) as caught:
        load_sweep_config(path, no_dropout)
    assert_names(caught.value, path, "CONFIGURATION", "Dropout")


def test_cli_refuses_a_bad_config_with_status_2_before_running(tmp_path, capsys):
    path = write(tmp_path, DOCUMENT_001.replace("Filter_Size = 3 5 8", "Filter_Size ="))
    out_dir = tmp_path / "out"
    status = main(["sweep", str(path), "--model", str(FASHION_MNIST), "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "[CONFIGURATION] Filter_Size: empty list" in err
    assert not out_dir.exists()


def test_config_id_is_file_name_safe_and_stable():
    assert config_id({"padding": "same", "kernel": (3, 3)}, 16, 2) == "padding=same,kernel=_3_3_,batch_size=16,r2"
    params = {f"p{i}": 1000000 + i for i in range(30)}
    # in full: 10 parts of 10 characters (p0=1000000) + 20 of 11 (p10=1000010) + 29 commas
    # + ",batch_size=1,r0" (16) = 365 > 180: cut to 180 - 13 = 167 characters + "-" + 12 hex digits
    full = ",".join(f"p{i}={1000000 + i}" for i in range(30)) + ",batch_size=1,r0"
    assert len(full) == 10 * 10 + 20 * 11 + 29 + 16 == 365
    long_id = config_id(params, 1, 0)
    assert len(long_id) == 180 and long_id[:168] == full[:167] + "-"
    assert all(c in "0123456789abcdef" for c in long_id[168:])
    # the hash covers what the cut drops: another last value, or another repeat, is another id
    assert config_id({**params, "p29": 7}, 1, 0) != long_id and config_id(params, 1, 1) != long_id
    # stable: the same id in a fresh interpreter with another string-hash seed (no hash() involved)
    code = f"from tfprofscale.sweep.runner import config_id; print(config_id({params!r}, 1, 0))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)})
    assert other.stdout.strip() == long_id


# ---- property tests: malformed files never escape as anything but one InputError line ----

ini_text = st.text(alphabet=string.printable + "éλ\x00", max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ini_text)
def test_any_text_parses_or_raises_one_input_error_line(tmp_path, text):
    path = write(tmp_path, text)
    try:
        config = parse_sweep_file(path)
    except InputError as error:
        assert "\n" not in str(error) and str(path) in str(error)
    else:
        assert all(values for values in config.grid.values())
        assert config.batch_sizes and config.steps >= 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(DOCUMENT_001_KEYS), blank=st.sampled_from(["", " ", "\t", " # only a comment"]))
def test_an_emptied_document_001_key_is_named(tmp_path, key, blank):
    lines = [f"{key} ={blank}" if line.split(" =")[0] == key else line for line in DOCUMENT_001.splitlines()]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        parse_sweep_file(path)
    assert_names(caught.value, path, "CONFIGURATION", key)
    assert "empty" in str(caught.value)


identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda name: name.lower() not in {key.lower() for key in DOCUMENT_001_KEYS})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=identifiers, value=st.integers(0, 99))
def test_an_unknown_document_001_key_is_named(tmp_path, key, value):
    path = write(tmp_path, DOCUMENT_001 + f"{key} = {value}\n")
    with pytest.raises(InputError) as caught:
        parse_sweep_file(path)
    assert_names(caught.value, path, "CONFIGURATION", key)
    assert "unknown key" in str(caught.value)


not_integers = st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(repr),
                         st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.just("'3'"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(INTEGER_KEYS), token=not_integers)
def test_a_non_integer_in_an_integer_key_is_named(tmp_path, key, token):
    lines = [f"{key} = {token}" if line.split(" =")[0] == key else line for line in DOCUMENT_001.splitlines()]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        parse_sweep_file(path)
    assert_names(caught.value, path, "CONFIGURATION", key)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
           lambda name: name not in {"batch_size", "repeat", "config_id", "status", "error"}),
       st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=5, unique=True), min_size=1, max_size=4))
def test_general_grid_values_round_trip(tmp_path, grid):
    body = "".join(f"{key} = {' '.join(map(str, values))}\n" for key, values in grid.items())
    config = parse_sweep_file(write(tmp_path, f"[sweep]\nbatch_size = 1\n[grid]\n{body}"))
    assert config.grid == grid
    assert list(config.grid) == list(grid)
