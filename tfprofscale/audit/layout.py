"""Line lengths of the audit's report: prose wrapped, long lists in table cells shortened.

A sweep's audit once had 3,241-character lines (every uncovered layer of
every configuration in one cell). Paragraphs are wrapped at ``WIDTH``
characters; a table cell listing more than ``MAX_LISTED`` names keeps the
first ones and says how many there are in all (the JSON keeps every one).
"""
from __future__ import annotations

import textwrap

from tfprofscale.report.units import UNSUPPORTED

__all__ = ["UNSUPPORTED", "WIDTH", "MAX_LISTED", "wrap", "short_cell"]

WIDTH = 100
MAX_LISTED = 6


def wrap(text: str, first_prefix: str = "", prefix: str = "  ", width: int = WIDTH) -> list[str]:
    """``text`` as lines of at most ``width`` characters (a longer word stays whole)."""
    return textwrap.wrap(text, width=width, initial_indent=first_prefix, subsequent_indent=prefix,
                         break_long_words=False, break_on_hyphens=False) or [first_prefix.rstrip()]


def short_cell(cell: str, max_listed: int = MAX_LISTED) -> str:
    """A comma-separated list of more than ``max_listed`` items cut to its first ones and the count."""
    items = cell.split(", ")
    if len(items) <= max_listed:
        return cell
    return f"{', '.join(items[:max_listed])} and {len(items) - max_listed} more ({len(items)} in all)"
