"""A sweep's configurations: the grid x batch sizes x repeats, counted by multiplication, expanded lazily.

``count_configurations`` multiplies the list lengths, so a grid of 10^8
configurations (or ``repeats = 1000000000``) is measured and refused by
``check_grid_size`` before a single configuration exists; ``iter_grid``
yields the configurations one at a time (``itertools.product``), in grid
order, and never holds the grid as a list.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from tfprofscale.errors import InputError
from tfprofscale.sweep.config import SweepConfig

DEFAULT_MAX_CONFIGS = 10_000
MAX_ID_CHARS = 180
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ConfigTask:
    """One configuration: grid values, batch size, repeat number and (with [sweep] mode) what is profiled."""

    config_id: str
    params: dict[str, Any]
    batch_size: int
    repeat: int
    mode: str | None = None  # "infer" or "train"; None: no mode axis (inference)


def config_id(params: dict[str, Any], batch_size: int, repeat: int, mode: str | None = None) -> str:
    """``k=v,...,batch_size=B[,mode=M],rR``: a stable, file-name-safe name for one configuration."""
    return _file_name([*_pairs(params), f"batch_size={batch_size}", *([f"mode={mode}"] if mode else []),
                       f"r{repeat}"])


def model_id(params: dict[str, Any]) -> str:
    """``k=v,...``: the name of the model a configuration builds (batch and repeat aside)."""
    return _file_name(_pairs(params) or ["defaults"])


def _pairs(params: dict[str, Any]) -> list[str]:
    return [f"{key}={_UNSAFE_CHARACTERS.sub('_', str(value))}" for key, value in params.items()]


def _file_name(parts: list[str]) -> str:
    """The parts joined by commas; a long name is cut and ends in a hash of the whole."""
    name = ",".join(parts)
    if len(name) <= MAX_ID_CHARS:
        return name
    return f"{name[:MAX_ID_CHARS - 13]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def count_configurations(config: SweepConfig) -> int:
    """How many configurations the sweep has: the product of the list lengths, batch sizes and repeats."""
    modes = len(config.modes) if config.modes is not None else 1
    return (math.prod(len(values) for values in config.grid.values()) * len(config.batch_sizes) * config.repeats
            * modes)


def check_grid_size(config: SweepConfig, max_configs: int = DEFAULT_MAX_CONFIGS) -> int:
    """The number of configurations; InputError (one line) if it is over ``max_configs``."""
    count = count_configurations(config)
    if count > max_configs:
        factors = " x ".join([f"{len(values)} {name}" for name, values in config.grid.items()]
                             + [f"{len(config.batch_sizes)} batch sizes", f"{config.repeats} repeats"]
                             + ([f"{len(config.modes)} modes"] if config.modes is not None else []))
        raise InputError(f"{config.source}: the sweep has {count:,} configurations ({factors}), over the limit "
                         f"of {max_configs:,}: shrink the grid, or raise the limit with --max-configs N")
    return count


def iter_grid(config: SweepConfig) -> Iterator[ConfigTask]:
    """Every configuration of the sweep, in grid order, one at a time; InputError if two get the same id."""
    _check_names(config)
    names = list(config.grid)
    seen: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*config.grid.values()):
        params = dict(zip(names, values))
        modes = config.modes if config.modes is not None else (None,)
        for batch_size, mode, repeat in itertools.product(config.batch_sizes, modes, range(config.repeats)):
            task = ConfigTask(config_id(params, batch_size, repeat, mode), params, batch_size, repeat, mode)
            if task.config_id in seen:
                raise InputError(f"{config.source} [grid]: values {seen[task.config_id]} and {params} "
                                 f"give the same configuration id {task.config_id!r}")
            seen[task.config_id] = params
            yield task


def expand_grid(config: SweepConfig, max_configs: int = DEFAULT_MAX_CONFIGS) -> list[ConfigTask]:
    """Every configuration of a sweep within the limit, as a list (the limit checked first)."""
    check_grid_size(config, max_configs)
    return list(iter_grid(config))


def _check_names(config: SweepConfig) -> None:
    from tfprofscale.sweep.tables import LAYER_FIELDS, RESULT_COLUMNS

    clashes = [name for name in config.grid if name in {*RESULT_COLUMNS, *LAYER_FIELDS, "config_id"}]
    if clashes:
        raise InputError(f"{config.origin(clashes[0])}: {clashes[0]!r} is also a column of the results")
