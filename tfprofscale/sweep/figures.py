"""The records a sweep's figures travel in: a figure with its name and description, and a saved PNG."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class NamedFigure:
    """A figure, the file name it is saved under, and one sentence of what it shows."""

    name: str
    figure: Any  # a matplotlib Figure
    description: str


@dataclass(frozen=True)
class SavedFigure:
    """A saved PNG, its title and its one-sentence description."""

    path: Path
    title: str
    description: str
