"""Records of a traced model's layers: their shapes and their hand-formula cost."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerCost:
    """Hand-formula cost of one layer for one forward pass of the whole batch.

    ``flops``/``macs`` are None when the layer type has no formula
    (``supported`` is then False). ``terms`` splits ``flops`` into named
    parts (``multiply_adds``, ``bias_adds``, ``activations``,
    ``comparisons``, ``padded_taps`` ...) and ``geometry`` keeps the numbers
    the formulas were computed from (kernel, channels, output size, batch,
    stride, padding), so that other conventions can be evaluated later.
    """

    layer_type: str
    supported: bool
    flops: int | None
    macs: int | None
    params: int
    output_elements: int
    activation_bytes: int
    receptive_field: int | None = None
    jump: int | None = None
    terms: dict[str, int] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a traced model, with the batch size fixed in its shapes.

    ``scope`` is the graph name scope the layer's ops were created under
    (Keras uniquifies scopes inside ``tf.function``, so it is recorded at
    call time, not guessed from the name). ``inbound`` names the layers
    whose outputs feed this one. ``layer`` is the Keras layer object, or
    None for a name-scope group of a plain ``tf.function``. A layer of a
    nested model is named by its path (``mobilenetv2_1.00_96/Conv1``);
    ``parent`` is the path of the enclosing model or composite layer (None
    at the top) and ``depth`` its nesting level (0 at the top).
    ``extra_calls`` holds (input shapes, output shape) of every call after
    the first, for a layer the model calls more than once (a shared layer):
    its formula counts every call.
    """

    name: str
    type: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    scope: str | None = None
    inbound: tuple[str, ...] = ()
    layer: Any = field(default=None, repr=False, compare=False)
    parent: str | None = None
    depth: int = 0
    extra_calls: tuple[tuple[tuple[Shape, ...], Shape], ...] = ()
