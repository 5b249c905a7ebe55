"""Bytes in one convention everywhere: binary (B, KiB, MiB, GiB), as the printed table shows them.

``binary_bytes`` for text; ``bytes_formatter`` for matplotlib axes (plots of
a sweep and of the audit), so that a figure's "3.33 MiB" is the table's.
"""
from __future__ import annotations

from typing import Any

BINARY_UNITS = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def binary_bytes(value: float | None, missing: str = "unsupported", digits: int = 2) -> str:
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
