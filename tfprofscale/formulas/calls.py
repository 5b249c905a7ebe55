"""How a layer was called in its model: keyword arguments and input masks of its first call.

Some work depends on the call, not on the layer's configuration: attention
masks and ``use_causal_mask``, ``return_attention_scores``, or a Keras mask
flowing into an RNN. Keras records each symbolic call as an inbound node;
a layer never called symbolically (an RNN inside ``Bidirectional``) has none.
"""
from __future__ import annotations

from typing import Any


def call_arguments(layer: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(positional, keyword) arguments of the layer's first symbolic call; empty if none."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    arguments = getattr(nodes[0], "arguments", None) if nodes else None
    if arguments is None:
        return (), {}
    return tuple(arguments.args), dict(arguments.kwargs)


def call_uses_mask(layer: Any, mask_arguments: tuple[str, ...] = ("mask",)) -> bool:
    """True if the first call passed any of ``mask_arguments`` or an input carrying a Keras mask."""
    args, kwargs = call_arguments(layer)
    if any(kwargs.get(name) is not None for name in mask_arguments):
        return True
    return any(getattr(tensor, "_keras_mask", None) is not None for tensor in _flat(args))


def masked_inputs(layer: Any) -> list[bool]:
    """Per positional input tensor of the first call (flattened): whether a mask goes with it.

    A mask is either passed as ``mask=`` (one per input, or one for all) or
    carried by the input tensor itself (Keras then passes it at call time).
    """
    args, kwargs = call_arguments(layer)
    tensors = _flat(args)
    passed = kwargs.get("mask")
    passed = _flat(passed) if isinstance(passed, (list, tuple)) else [passed] * len(tensors)
    return [mask is not None or getattr(tensor, "_keras_mask", None) is not None
            for tensor, mask in zip(tensors, passed)]


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [item for value in values for item in _flat(value)]
    if isinstance(values, dict):
        return _flat(list(values.values()))
    return [values]
