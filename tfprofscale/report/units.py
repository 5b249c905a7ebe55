"""Numbers as the printed tables show them: SI prefixes, binary bytes (one convention everywhere), the word for
a missing number.

``binary_bytes`` for text; ``bytes_formatter`` for matplotlib axes (plots of
a sweep and of the audit), so that a figure's "3.33 MiB" is the table's.
"""
from __future__ import annotations

from typing import Any

#: The one word for a number a source does not have (null in JSON); defined in the footer when used.
UNSUPPORTED = "unsupported"
UNSUPPORTED_DEFINITION = ("unsupported: that source has no number here (no formula for the layer type, or no FLOPs "
                          "statistics for the op type); never 0")
BINARY_UNITS = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
INDENT = "  "


def si(value: float | None, unit: str = "") -> str:
    """``1234567`` as ``1.23M``; None as ``unsupported``."""
    if value is None:
        return UNSUPPORTED
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{prefix}{unit}"
    return f"{value:.0f}{unit}" if float(value).is_integer() else f"{value:.2f}{unit}"


def binary_bytes(value: float | None, missing: str = UNSUPPORTED, digits: int = 2) -> str:
    """Bytes as B / KiB / MiB / GiB / TiB; None as ``missing``."""
    if value is None:
        return missing
    for scale, unit in BINARY_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f} {unit}"
    return f"{value:.0f} B"


def bytes_formatter() -> Any:
    """A matplotlib tick formatter writing bytes in binary units (``1.5 MiB``), on linear and log axes."""
    from matplotlib.ticker import FuncFormatter

    def tick(value: float, _position: Any) -> str:
        text = binary_bytes(value, digits=2)
        number, _, unit = text.partition(" ")
        return f"{float(number):g} {unit}"

    return FuncFormatter(tick)


def short_name(row: Any) -> str:
    """A nested row's name inside its parent (the indentation shows the rest of the path)."""
    prefix = f"{row.parent}/" if row.parent else ""
    return row.name[len(prefix):] if prefix and row.name.startswith(prefix) else row.name
