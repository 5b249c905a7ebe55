"""Reading one value of a sweep INI file: lists, counts, sizes, shapes, modes, addresses, each checked.

Every reader takes ``where`` (the file, section and key) so that a bad value
is one line naming its place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.input_shapes import parse_input_shapes
from tfprofscale.profiling.trace.loading import literal

MODES = ("infer", "train")  # what a configuration profiles: an inference step or a training step


@dataclass(frozen=True)
class Where:
    """A key's location, for error messages."""

    file: Path
    section: str
    key: str

    def error(self, problem: str) -> InputError:
        return InputError(f"{self.file} [{self.section}] {self.key}: {problem}")


def value_list(where: Where, text: str) -> list[Any]:
    tokens = text.split()
    if not tokens:
        raise where.error("empty list: give one or more values separated by spaces")
    values = [literal(token) for token in tokens]
    repeated = sorted({token for token in tokens if tokens.count(token) > 1})
    if repeated:
        raise where.error(f"value {repeated[0]!r} is listed twice")
    return values


def input_shapes(where: Where, text: str) -> tuple[tuple[int, ...], ...] | dict[str, tuple[int, ...]]:
    """``224,224,3`` (one input), ``64 64,8`` (one shape per input, separated by spaces) or by name,
    ``token_ids=128 padding_mask=128``."""
    label = f"{where.file} [{where.section}] {where.key}"
    return parse_input_shapes(text.split(), label) or ()


def shapes_json(shapes: Any) -> Any:
    """Input shapes as JSON: a list of lists, or an object by input name; None when not given."""
    if not shapes:
        return None
    if isinstance(shapes, dict):
        return {name: list(shape) for name, shape in shapes.items()}
    return [list(shape) for shape in shapes]


def positive_int_list(where: Where, text: str) -> list[int]:
    values = value_list(where, text)
    for value in values:
        _require_int(where, value, minimum=1)
    return values


def _one_value(where: Where, text: str) -> Any:
    values = value_list(where, text)
    if len(values) > 1:
        raise where.error(f"expected one value, got a list of {len(values)}: {text.strip()!r}")
    return values[0]


def positive_int(where: Where, text: str) -> int:
    return _require_int(where, _one_value(where, text), minimum=1)


def non_negative_int(where: Where, text: str) -> int:
    return _require_int(where, _one_value(where, text), minimum=0)


def _require_int(where: Where, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"value {value!r} is not an integer")
    if value < minimum:
        raise where.error(f"value {value} must be >= {minimum}")
    return value


def positive_float(where: Where, text: str) -> float:
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


def keep_probability_as_rate(where: Where, text: str) -> list[float]:
    """Document 001's Dropout, a keep probability in (0, 1], as the model's dropout rate."""
    keep = _one_value(where, text)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise where.error(f"value {keep!r} must be a keep probability in (0, 1] (the dropout rate is 1 - it)")
    return [round(1.0 - float(keep), 12)]


def modes(where: Where, text: str) -> tuple[str, ...]:
    """``infer``, ``train`` or both, each once."""
    values = value_list(where, text)
    for value in values:
        if value not in MODES:
            raise where.error(f"mode {value!r} is neither infer nor train")
    return tuple(values)


def scheduler_address(where: Where, text: str) -> str:
    return check_scheduler_address(text.strip(), lambda problem: where.error(problem))


def check_scheduler_address(address: str, error: Callable[[str], InputError]) -> str:
    """``address`` if it looks like a Dask scheduler address (``tcp://HOST:PORT``), else ``error(problem)``."""
    scheme, separator, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if not separator or scheme not in ("tcp", "tls", "ws", "wss", "ucx") or not host or not port.isdigit():
        raise error(f"{address!r} is not a scheduler address like tcp://HOST:8786")
    return address


def one_path(where: Where, text: str) -> Path:
    value = text.strip()
    if not value:
        raise where.error("empty: give the model file's path")
    return Path(value)
