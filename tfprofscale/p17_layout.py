"""Document 001's conv stack as printed ("layout=p17"), shared by its two classifiers.

The document's 4-layer models read a (height, width, 1) map with one conv
``conv_size`` tall spanning the whole width, 'valid', then a max-pool over
the whole remaining height: conv (height - conv_size + 1, 1, filters), pool
(1, 1, filters), e.g. (26, 1, 64) then (1, 1, 64) for 28x28 images and
conv size 3, (54, 1, 64) for 56 tokens.

Deeper models, as the original code built them, cannot always be built (a
'valid' conv meets a map shorter than its kernel). The closest buildable
stack, used here for every further conv+pool pair:

- each pool but the last is 2x1 with stride 1, as the original's stride-1
  pools: the map loses one row;
- each further conv is ``conv_size`` x 1 (the width is 1 by then), 'valid'
  while the map is at least ``conv_size`` tall, else 'same' (the original
  would have failed there);
- the last pool takes the whole remaining height, so the stack always ends
  at (1, 1, filters).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfprofscale.errors import InputError


@dataclass(frozen=True)
class ConvPool:
    """One conv+pool pair of the stack: conv kernel and padding, pool window and stride (height, width)."""

    kernel: tuple[int, int]
    padding: str
    pool: tuple[int, int]
    pool_stride: tuple[int, int]
    conv_height: int


def require_layout(layout: object, choices: tuple[str, ...]) -> str:
    """``layout`` if it is one of ``choices``; InputError naming them otherwise."""
    if layout not in choices:
        raise InputError(f"layout={layout!r}: must be one of {', '.join(choices)}")
    return str(layout)


def p17_stack(height: int, width: int, conv_size: int, pairs: int) -> list[ConvPool]:
    """The conv+pool pairs of document 001's layout on a (height, width, 1) input."""
    if conv_size > height:
        raise InputError(f"conv_size={conv_size} is taller than the {height}-row input conv0 meets")
    stack, rows = [], height - conv_size + 1
    for index in range(pairs):
        if index > 0:
            padding = "valid" if rows >= conv_size else "same"
            rows = rows - conv_size + 1 if padding == "valid" else rows
        last = index == pairs - 1
        if not last and rows < 2:
            raise InputError(f"pool{index} meets a map {rows} row tall: a 2x1 pool shrinks it to nothing")
        pool = (rows, 1) if last else (2, 1)
        stack.append(ConvPool((conv_size, width) if index == 0 else (conv_size, 1),
                              "valid" if index == 0 else padding, pool, pool if last else (1, 1), rows))
        rows = 1 if last else rows - 1
    return stack


def add_p17_stack(tensor: Any, stack: list[ConvPool], filters: int) -> Any:
    """Apply the stack's Conv2D (ReLU) and MaxPooling2D layers, named conv<i> / pool<i>."""
    import keras

    for index, pair in enumerate(stack):
        tensor = keras.layers.Conv2D(filters, pair.kernel, padding=pair.padding, activation="relu",
                                     name=f"conv{index}")(tensor)
        tensor = keras.layers.MaxPooling2D(pair.pool, strides=pair.pool_stride, name=f"pool{index}")(tensor)
    return tensor
