"""The printed table fitted to the terminal: fewer columns and wrapped footer lines, never a cut number.

``COLUMNS`` (or the terminal's width when the output is a terminal) sets the
width; the table drops its least needed columns, in ``DROP_ORDER``, until it
fits, and the footer's long lines wrap under their label. ``--wide``, JSON
and CSV keep everything.
"""
from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import Sequence

#: Column titles, least needed first: dropped in this order until the table fits.
DROP_ORDER = ("Memory", "GFLOP/s", "Activations", "Output shape", "FLOPs graph", "Share")
#: Footer lines start with a label padded to this width ("Warning:       ").
LABEL_WIDTH = 15


def output_width(wide: bool = False) -> int | None:
    """The width to fit: ``COLUMNS`` if set, else the terminal's when stdout is one; None (no limit) with ``wide``."""
    if wide:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def kept_columns(titles: Sequence[str], widths: Sequence[int], width: int | None) -> list[int]:
    """Indices of the columns kept so that their widths (plus one space each) fit ``width``."""
    kept = list(range(len(titles)))
    for title in DROP_ORDER:
        if width is None or sum(widths[i] + 1 for i in kept) - 1 <= width:
            break
        if title in titles:
            kept.remove(list(titles).index(title))
    return kept


def wrap_footer(lines: Sequence[str], width: int | None) -> list[str]:
    """Each line wrapped to ``width`` with its continuation indented under the label's text."""
    if width is None:
        return list(lines)
    wrapped: list[str] = []
    indent = " " * LABEL_WIDTH
    for line in lines:
        if len(line) <= width:
            wrapped.append(line)
            continue
        wrapped += textwrap.wrap(line, width=max(width, LABEL_WIDTH + 20), subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False) or [line]
    return wrapped
