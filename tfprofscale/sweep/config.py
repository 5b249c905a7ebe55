"""Sweep configuration files (INI) into a checked ``SweepConfig``.

Two forms. Document 001's, unchanged: one ``[CONFIGURATION]`` section with
space-separated lists, the model named on the command line::

    [CONFIGURATION]
    Training_Iterations = 10          training epochs (only with --data)
    Batch_Size = 1 4 16 64            inference batch sizes profiled
    Tot_Layers = 4 6 8 10             the classifiers' total_layers
    Filter_Size = 3 5 8               the classifiers' conv_size
    Learning_Rate = 0.001             training learning rate (only with --data)
    Dropout = 0.75                    a KEEP probability: dropout rate = 1 - 0.75
    Evaluation_Iterations = 10        timed steps per configuration

``Dropout`` follows the models' reading (see ``models/fashion_mnist.py``):
document 001's 0.75 is the TF1-style keep probability, so the model's
``dropout`` rate is 0.25. The general form::

    [sweep]
    model = ../models/fashion_mnist.py   relative to this file's folder
    batch_size = 1 4 16 64
    steps = 50                           timed steps (default 50)
    repeats = 1                          measurements of each configuration (default 1)
    warmup = 5                           optional (default 5)
    trace_steps = 10                     optional, profiled steps (default 10)
    input_shape = 224,224,3              optional, per-example shape of inputs left undefined (one per input,
                                         or by name: token_ids=128 padding_mask=128)
    timeout = 600                        optional, seconds one configuration may run (default: no limit)
    mode = infer train                   optional, what is profiled: inference, one training step, or both
                                         (a grid axis: results.csv gets a mode column; default infer)
    scheduler = tcp://HOST:8786          optional, a dask.distributed scheduler to run on (default: local)
    threads = 2                          optional, as profile's --threads (default: TensorFlow's choice)
    min_time = 0.02                      optional, as --min-time: seconds per timed round
    target_ci = 2                        optional, as --target-ci: percent of the median
    max_time = 3                         optional, as --max-time: seconds for the whole measurement
    processes = 1                        optional, as --processes: timing processes per configuration
    [grid]
    total_layers = 4 6 8 10              any model parameter: a list of values
    conv_size = 3 5 8
    [training]                           optional, used only with --data
    epochs = 10
    learning_rate = 0.001
    batch_size = 64

Values are Python literals (``3``, ``0.5``, ``'same'`` or ``same``). Every
mistake is an ``InputError`` of one line naming the file, section and key.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from tfprofscale.errors import InputError
from tfprofscale.inputs import read_text

CONFIG_LIMIT_BYTES = 2**20
from tfprofscale.profiling.trace.input_shapes import parse_input_shapes
from tfprofscale.profiling.trace.loading import ModelFile, check_type, literal, load_model_file
from tfprofscale.sweep.timing_settings import TimingSettings, check_step_bounds, read_timing

DOCUMENT_001_SECTION = "CONFIGURATION"
DOCUMENT_001_PARAMETERS = {"tot_layers": "total_layers", "filter_size": "conv_size", "dropout": "dropout"}
DOCUMENT_001_KEYS = {"training_iterations", "batch_size", "tot_layers", "filter_size", "learning_rate",
                     "dropout", "evaluation_iterations"}
SWEEP_KEYS = {"model", "batch_size", "steps", "repeats", "warmup", "trace_steps", "input_shape", "timeout",
              "scheduler", "mode", "threads", "min_time", "target_ci", "max_time", "processes"}
TRAINING_KEYS = {"epochs", "learning_rate", "batch_size"}
RESERVED_NAMES = {"batch_size", "repeat", "config_id", "status", "error", "mode"}
MODES = ("infer", "train")
_NO_DEFAULT_SECTION = "\0no default section"


@dataclass(frozen=True)
class TrainingSettings:
    """How each configuration is trained when the sweep is given data."""

    epochs: int = 10
    learning_rate: float = 0.001
    batch_size: int = 64


@dataclass(frozen=True)
class SweepConfig:
    """A checked sweep: the model, the grid of its parameters, batch sizes, how to measure."""

    source: Path
    model: Path | None
    grid: dict[str, list[Any]]
    batch_sizes: list[int]
    steps: int = 50
    repeats: int = 1
    warmup: int = 5
    trace_steps: int = 10
    training: TrainingSettings = field(default_factory=TrainingSettings)
    origins: dict[str, str] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, ...], ...] | dict[str, tuple[int, ...]] | None = None
    timeout_s: float | None = None
    scheduler: str | None = None
    modes: tuple[str, ...] | None = None  # [sweep] mode; None: inference only, and no mode column

    def axes(self) -> list[str]:
        """The columns that tell configurations apart beside batch and repeat: grid keys, then ``mode``."""
        return [*self.grid, *(["mode"] if self.modes is not None else [])]
    timing: TimingSettings = field(default_factory=TimingSettings)

    def origin(self, name: str) -> str:
        """Where grid parameter ``name`` came from: ``FILE [section] key``."""
        return f"{self.source} {self.origins.get(name, f'[grid] {name}')}"

    def settings(self) -> dict[str, Any]:
        """The resolved sweep as plain JSON-ready values (what sweep.json records)."""
        return {
            "config_file": str(self.source), "model": str(self.model), "grid": self.grid,
            "batch_sizes": self.batch_sizes, "steps": self.steps, "repeats": self.repeats,
            "warmup": self.warmup, "trace_steps": self.trace_steps, "timing": asdict(self.timing),
            "input_shape": _shapes_json(self.input_shapes),
            "modes": list(self.modes) if self.modes is not None else None,
            "training": {"epochs": self.training.epochs, "learning_rate": self.training.learning_rate,
                         "batch_size": self.training.batch_size},
        }


@dataclass(frozen=True)
class _Where:
    """A key's location, for error messages."""

    file: Path
    section: str
    key: str

    def error(self, problem: str) -> InputError:
        return InputError(f"{self.file} [{self.section}] {self.key}: {problem}")


def load_sweep_config(path: str | os.PathLike, model: str | os.PathLike | None = None) -> SweepConfig:
    """Parse ``path``, resolve the model (``model`` overrides the file's) and check the grid against it."""
    config = parse_sweep_file(path)
    if model is not None:
        config = _with_model(config, Path(model), "--model")
    if config.model is None:
        raise InputError(f"{config.source}: no model: give --model FILE or a [sweep] model key")
    model_file = _load_model(config)
    check_grid_against_model(config, model_file)
    return config


def parse_sweep_file(path: str | os.PathLike) -> SweepConfig:
    """The ``SweepConfig`` of an INI file in either form, without importing the model."""
    source = Path(path)
    parser = _read_ini(source)
    sections = {name.lower(): name for name in parser.sections()}
    if len(sections) < len(parser.sections()):
        twice = next(name for name in parser.sections() if sections[name.lower()] != name)
        raise InputError(f"{source} [{twice}]: section given twice (also as [{sections[twice.lower()]}])")
    for lowered, name in sections.items():
        if lowered not in ("configuration", "sweep", "grid", "training"):
            raise InputError(f"{source} [{name}]: unknown section (expected [{DOCUMENT_001_SECTION}], "
                             f"or [sweep] with [grid] and optional [training])")
    if "configuration" in sections:
        others = [sections[name] for name in ("sweep", "grid", "training") if name in sections]
        if others:
            raise InputError(f"{source} [{others[0]}]: cannot be mixed with document 001's "
                             f"[{sections['configuration']}] section")
        section = sections["configuration"]
        return _document_001(source, section, _section_keys(source, parser, section))
    if "sweep" not in sections:
        raise InputError(f"{source}: missing section [sweep] (or document 001's [{DOCUMENT_001_SECTION}])")
    return _general(source, parser, sections)


def check_grid_against_model(config: SweepConfig, model_file: ModelFile) -> None:
    """InputError unless every grid key is a parameter of the model and every value has its type."""
    accepted = model_file.accepted_params()
    defaults = model_file.defaults
    for name, values in config.grid.items():
        if accepted is not None and name not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            raise InputError(f"{config.origin(name)}: {model_file.path.name} has no parameter {name!r} "
                             f"(its parameters: {known})")
        for value in values:
            try:
                check_type(name, value, defaults.get(name))
            except InputError:
                raise InputError(f"{config.origin(name)}: value {value!r} is a {type(value).__name__}, "
                                 f"but {name} takes a {type(defaults[name]).__name__} "
                                 f"(default {defaults[name]!r})") from None


def _read_ini(source: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, inline_comment_prefixes=("#", ";"),
                                       default_section=_NO_DEFAULT_SECTION)
    parser.optionxform = str  # keys keep their case: grid keys are Python parameter names
    text = read_text(source, "config file", CONFIG_LIMIT_BYTES)  # a FIFO or /dev/zero is refused, not read
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors save UTF-8
    try:
        parser.read_string(text, source=str(source))
    except configparser.Error as error:
        raise InputError(_ini_error_line(source, error)) from None
    return parser


def _ini_error_line(source: Path, error: configparser.Error) -> str:
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"{source}, line {error.lineno}: missing section header before {error.line.strip()!r}"
    if isinstance(error, configparser.DuplicateOptionError):
        return f"{source} [{error.section}] {error.option}: given twice (line {error.lineno})"
    if isinstance(error, configparser.DuplicateSectionError):
        return f"{source} [{error.section}]: section given twice (line {error.lineno})"
    if isinstance(error, configparser.ParsingError):
        lineno, line = error.errors[0]
        return f"{source}, line {lineno}: not a 'key = value' line: {line.strip()!r}"
    return f"{source}: not an INI file: {str(error).splitlines()[0]}"


def _section_keys(source: Path, parser: configparser.ConfigParser, section: str) -> dict[str, tuple[str, str]]:
    """Lower-cased key -> (key as written, value); InputError if two keys differ only in case."""
    keys: dict[str, tuple[str, str]] = {}
    for key, value in parser.items(section):
        if key.lower() in keys:
            raise InputError(f"{source} [{section}] {key}: given twice (also as {keys[key.lower()][0]})")
        keys[key.lower()] = (key, value)
    return keys


def _document_001(source: Path, section: str, keys: dict[str, tuple[str, str]]) -> SweepConfig:
    _reject_unknown(source, section, keys, DOCUMENT_001_KEYS)
    read = _Reader(source, section, keys)
    grid = {parameter: read(key, _keep_probability_as_rate if key == "dropout" else _positive_int_list, None)
            for key, parameter in DOCUMENT_001_PARAMETERS.items() if key in keys}
    origins = {parameter: f"[{section}] {keys[key][0]}"
               for key, parameter in DOCUMENT_001_PARAMETERS.items() if key in keys}
    training = TrainingSettings(epochs=read("training_iterations", _positive_int, 10),
                                learning_rate=read("learning_rate", _positive_float, 0.001))
    return SweepConfig(source=source, model=None, grid=grid, batch_sizes=read("batch_size", _positive_int_list, [1]),
                       steps=read("evaluation_iterations", _positive_int, 50), training=training, origins=origins)


def _general(source: Path, parser: configparser.ConfigParser, sections: dict[str, str]) -> SweepConfig:
    sweep_keys = _section_keys(source, parser, sections["sweep"])
    _reject_unknown(source, sections["sweep"], sweep_keys, SWEEP_KEYS)
    read = _Reader(source, sections["sweep"], sweep_keys)
    config = SweepConfig(
        source=source, model=None,
        grid=_grid(source, parser, sections["grid"]) if "grid" in sections else {},
        batch_sizes=read("batch_size", _positive_int_list, [1]),
        steps=read("steps", _positive_int, 50),
        repeats=read("repeats", _positive_int, 1),
        warmup=read("warmup", _non_negative_int, 5),
        trace_steps=read("trace_steps", _non_negative_int, 10),
        training=_training(source, parser, sections["training"]) if "training" in sections else TrainingSettings(),
        input_shapes=read("input_shape", _input_shapes, None),
        timeout_s=read("timeout", _positive_float, None),
        scheduler=read("scheduler", _scheduler_address, None),
        modes=read("mode", _modes, None),
        timing=read_timing(read),
    )
    check_step_bounds(read, config)
    if "model" not in sweep_keys:
        return config
    model = read("model", _one_path, None)
    return _with_model(config, Path(os.path.normpath(source.parent / model)),
                       f"{source} [{sections['sweep']}] {sweep_keys['model'][0]}")


def _training(source: Path, parser: configparser.ConfigParser, section: str) -> TrainingSettings:
    keys = _section_keys(source, parser, section)
    _reject_unknown(source, section, keys, TRAINING_KEYS)
    read = _Reader(source, section, keys)
    return TrainingSettings(epochs=read("epochs", _positive_int, 10),
                            learning_rate=read("learning_rate", _positive_float, 0.001),
                            batch_size=read("batch_size", _positive_int, 64))


@dataclass(frozen=True)
class _Reader:
    """Reads one key of a section (lower-cased name) with a parser, or gives the default."""

    file: Path
    section: str
    keys: dict[str, tuple[str, str]]

    def __call__(self, name: str, parse: Callable[[_Where, str], Any], default: Any) -> Any:
        if name not in self.keys:
            return default
        written, text = self.keys[name]
        return parse(_Where(self.file, self.section, written), text)

    @staticmethod
    def positive_float(where: _Where, text: str) -> float:
        """A finite number > 0 (the parser other modules' keys use)."""
        return _positive_float(where, text)

    def where(self, name: str) -> _Where:
        """The location of key ``name`` (as written in the file), for an error about its value."""
        return _Where(self.file, self.section, self.keys.get(name, (name, ""))[0])


def _grid(source: Path, parser: configparser.ConfigParser, section: str) -> dict[str, list[Any]]:
    grid = {}
    for key, text in parser.items(section):
        where = _Where(source, section, key)
        if not key.isidentifier():
            raise where.error("not a parameter name (a Python identifier)")
        if key in RESERVED_NAMES:
            raise where.error(f"{key!r} is a column of the results, not a model parameter"
                              + (" (batch sizes go in [sweep] batch_size)" if key == "batch_size" else ""))
        grid[key] = _value_list(where, text)
    return grid


def _with_model(config: SweepConfig, model: Path, origin: str) -> SweepConfig:
    return replace(config, model=model, origins={**config.origins, "model": origin})


def _load_model(config: SweepConfig) -> ModelFile:
    if not config.model.is_file():
        problem = "is not a file" if config.model.exists() else "does not exist"
        raise InputError(f"{config.origins['model']}: model file {config.model} {problem}")
    return load_model_file(config.model)


def _reject_unknown(source: Path, section: str, keys: dict[str, tuple[str, str]], known: set[str]) -> None:
    for lowered, (written, _) in keys.items():
        if lowered not in known:
            raise InputError(f"{source} [{section}] {written}: unknown key (known: {', '.join(sorted(known))})")


def _value_list(where: _Where, text: str) -> list[Any]:
    tokens = text.split()
    if not tokens:
        raise where.error("empty list: give one or more values separated by spaces")
    values = [literal(token) for token in tokens]
    repeated = sorted({token for token in tokens if tokens.count(token) > 1})
    if repeated:
        raise where.error(f"value {repeated[0]!r} is listed twice")
    return values


def _input_shapes(where: _Where, text: str) -> tuple[tuple[int, ...], ...] | dict[str, tuple[int, ...]]:
    """``224,224,3`` (one input), ``64 64,8`` (one shape per input, separated by spaces) or by name,
    ``token_ids=128 padding_mask=128``."""
    label = f"{where.file} [{where.section}] {where.key}"
    return parse_input_shapes(text.split(), label) or ()


def _shapes_json(shapes: Any) -> Any:
    """Input shapes as JSON: a list of lists, or an object by input name; None when not given."""
    if not shapes:
        return None
    if isinstance(shapes, dict):
        return {name: list(shape) for name, shape in shapes.items()}
    return [list(shape) for shape in shapes]


def _positive_int_list(where: _Where, text: str) -> list[int]:
    values = _value_list(where, text)
    for value in values:
        _require_int(where, value, minimum=1)
    return values


def _one_value(where: _Where, text: str) -> Any:
    values = _value_list(where, text)
    if len(values) > 1:
        raise where.error(f"expected one value, got a list of {len(values)}: {text.strip()!r}")
    return values[0]


def _positive_int(where: _Where, text: str) -> int:
    return _require_int(where, _one_value(where, text), minimum=1)


def _non_negative_int(where: _Where, text: str) -> int:
    return _require_int(where, _one_value(where, text), minimum=0)


def _require_int(where: _Where, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"value {value!r} is not an integer")
    if value < minimum:
        raise where.error(f"value {value} must be >= {minimum}")
    return value


def _positive_float(where: _Where, text: str) -> float:
    value = _one_value(where, text)
    if isinstance(value, str) and _is_float(value):  # inf, nan: numbers, but not a limit
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"value {value!r} is not a number")
    if where.key.lower() == "timeout" and value == float("inf"):
        raise where.error("value inf must be a finite number of seconds > 0 (leave timeout out for no limit)")
    if not 0 < value < float("inf"):
        raise where.error(f"value {value} must be a finite number > 0")
    return float(value)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _keep_probability_as_rate(where: _Where, text: str) -> list[float]:
    """Document 001's Dropout, a keep probability in (0, 1], as the model's dropout rate."""
    keep = _one_value(where, text)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise where.error(f"value {keep!r} must be a keep probability in (0, 1] (the dropout rate is 1 - it)")
    return [round(1.0 - float(keep), 12)]


def _modes(where: _Where, text: str) -> tuple[str, ...]:
    """``infer``, ``train`` or both, each once."""
    values = _value_list(where, text)
    for value in values:
        if value not in MODES:
            raise where.error(f"mode {value!r} is neither infer nor train")
    return tuple(values)


def _scheduler_address(where: _Where, text: str) -> str:
    return check_scheduler_address(text.strip(), lambda problem: where.error(problem))


def check_scheduler_address(address: str, error: Callable[[str], InputError]) -> str:
    """``address`` if it looks like a Dask scheduler address (``tcp://HOST:PORT``), else ``error(problem)``."""
    scheme, separator, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if not separator or scheme not in ("tcp", "tls", "ws", "wss", "ucx") or not host or not port.isdigit():
        raise error(f"{address!r} is not a scheduler address like tcp://HOST:8786")
    return address


def _one_path(where: _Where, text: str) -> Path:
    value = text.strip()
    if not value:
        raise where.error("empty: give the model file's path")
    return Path(value)
