"""Sizes in bytes as people write them: ``2GiB``, ``500MB``, ``1.5G``, ``4096``.

Binary units (``KiB``, ``MiB``, ``GiB``, ``TiB``) and the bare letters
``K``/``M``/``G``/``T`` are powers of 1024 (as ``free -g`` and ``ulimit``
count); decimal units (``kB``, ``MB``, ``GB``, ``TB``) are powers of 1000.
A bare number, or one ending in ``B``, is bytes. Case and the space between
number and unit do not matter. Shared by ``--max-memory`` and ``--memory-budget``.
"""
from __future__ import annotations

import math
import re

from tfprofscale.errors import InputError

UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30, "t": 2**40, "tib": 2**40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, option: str = "size") -> int:
    """Bytes that ``text`` names (rounded down to a whole byte); InputError naming ``option`` if it is not a size."""
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise InputError(f"{option} {text!r} is not a size: give bytes or a number with a unit "
                         "(e.g. 2GiB, 500MB, 1.5G)")
    value = math.floor(float(match.group(1)) * UNITS[unit])
    if value <= 0:
        raise InputError(f"{option} {text!r} must be more than 0 bytes")
    return value


def format_size(value: float) -> str:
    """Bytes as the largest binary unit that keeps the number >= 1 (``1.5 GiB``, ``512 MiB``)."""
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f} B"
