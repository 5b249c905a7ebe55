"""Numbers as the printed tables show them: SI prefixes, binary bytes, and the word for a missing number."""
from __future__ import annotations

from typing import Any

#: The one word for a number a source does not have (null in JSON); defined in the footer when used.
UNSUPPORTED = "unsupported"
UNSUPPORTED_DEFINITION = ("unsupported: that source has no number here (no formula for the layer type, no FLOPs "
                          "statistics for the op type, or no time without a trace); never 0")


def si(value: float | None, unit: str = "") -> str:
    """``1234567`` as ``1.23M``; None as ``unsupported``."""
    if value is None:
        return UNSUPPORTED
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{prefix}{unit}"
    return f"{value:.0f}{unit}" if float(value).is_integer() else f"{value:.2f}{unit}"


def binary_bytes(value: int | None) -> str:
    """Bytes as B / KiB / MiB / GiB; None as ``unsupported``."""
    if value is None:
        return UNSUPPORTED
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


INDENT = "  "


def short_name(row: Any) -> str:
    """A nested row's name inside its parent (the indentation shows the rest of the path)."""
    prefix = f"{row.parent}/" if row.parent else ""
    return row.name[len(prefix):] if prefix and row.name.startswith(prefix) else row.name
