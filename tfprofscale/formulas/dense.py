"""Dense layers: a matrix product per row of the input (Dense), or an einsum with a kernel (EinsumDense).

With LoRA enabled, Keras rebuilds the kernel on every call as
``kernel + (alpha / rank) * A @ B``: that product and merge are work of each
inference step (``lora_product``, ``lora_merge``). Quantized layers (int8,
int4, GPTQ, AWQ) do integer work that flops do not describe: unsupported.
"""
from __future__ import annotations

import math
from typing import Any

from tfprofscale.formulas.registry import Formula, NoFormula, activation_of, formula_for
from tfprofscale.records import LayerInfo

@formula_for("Dense")
def _dense(info: LayerInfo) -> Formula:
    """multiply-adds = rows * in_features * out_features; rows = all dims but the last."""
    layer, input_shape = info.layer, _float_layer(info).input_shapes[0]
    rows, in_features, out_features = math.prod(input_shape[:-1]), input_shape[-1], layer.units
    activation, per_element = activation_of(layer.activation)
    outputs = rows * out_features
    multiply_adds = rows * in_features * out_features
    lora_terms, lora_macs, lora_params = _lora(layer, (in_features, out_features))
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if layer.use_bias else 0,
               "activations": outputs * per_element, **lora_terms},
        macs=multiply_adds + lora_macs,
        params=in_features * out_features + (out_features if layer.use_bias else 0) + lora_params,
        geometry={"rows": rows, "in_features": in_features, "out_features": out_features,
                  "use_bias": bool(layer.use_bias), "activation": activation,
                  "activation_flops_per_element": per_element},
        mixes_all_positions=len(input_shape) == 2)


@formula_for("EinsumDense")
def _einsum_dense(info: LayerInfo) -> Formula:
    """multiply-adds = output elements * the sizes of the contracted (summed) indices.

    The equation ``input,kernel->output`` names every index once; each output
    element sums over the indices absent from the output (``...`` stands for
    indices carried through unchanged, part of the output).
    """
    layer, input_shape, output_shape = info.layer, _float_layer(info).input_shapes[0], info.output_shape
    kernel_shape = tuple(layer.kernel.shape)
    summed = _summed_index_sizes(layer.equation, input_shape, kernel_shape)
    activation, per_element = activation_of(layer.activation)
    outputs = math.prod(output_shape)
    multiply_adds = outputs * math.prod(summed.values())
    bias_size = math.prod(layer.bias.shape) if layer.bias is not None else 0
    lora_terms, lora_macs, lora_params = _lora(layer, (math.prod(kernel_shape[:-1]), kernel_shape[-1]))
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if layer.bias is not None else 0,
               "activations": outputs * per_element, **lora_terms},
        macs=multiply_adds + lora_macs,
        params=math.prod(kernel_shape) + bias_size + lora_params,
        geometry={"equation": layer.equation, "summed_indices": summed, "outputs": outputs,
                  "kernel_shape": list(layer.kernel.shape), "use_bias": layer.bias is not None,
                  "activation": activation, "activation_flops_per_element": per_element},
        mixes_all_positions=len(input_shape) == 2)


def _float_layer(info: LayerInfo) -> LayerInfo:
    if getattr(info.layer, "quantization_mode", None):
        raise NoFormula(f"{info.type} {info.name!r} is quantized ({info.layer.quantization_mode}): integer work")
    return info


def _lora(layer: Any, kernel_matrix: tuple[int, int]) -> tuple[dict[str, int], int, int]:
    """(terms, MACs, params) of rebuilding a (fan_in, fan_out) kernel from its rank-r LoRA factors."""
    if not getattr(layer, "lora_enabled", False):
        return {}, 0, 0
    fan_in, fan_out = kernel_matrix
    rank, elements = layer.lora_rank, fan_in * fan_out
    return ({"lora_product": 2 * elements * rank, "lora_merge": 2 * elements},   # scale by alpha/r, add
            elements * rank, rank * (fan_in + fan_out))


def _summed_index_sizes(equation: str, input_shape: tuple[int, ...],
                        kernel_shape: tuple[int, ...]) -> dict[str, int]:
    """{index: size} of the indices of ``input,kernel->output`` that the output sums over."""
    sizes, elided, output = _index_sizes(equation, input_shape, kernel_shape)
    return {index: size for index, size in sizes.items() if index not in output}


def einsum_dense_output_shape(layer: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The full output shape of an EinsumDense layer on ``input_shape`` (``...`` resolved)."""
    sizes, elided, output = _index_sizes(layer.equation, input_shape, tuple(layer.kernel.shape))
    before, _, after = output.partition("...")
    return (*(sizes[i] for i in before), *(elided if "..." in output else ()), *(sizes[i] for i in after))


def _index_sizes(equation: str, input_shape: tuple[int, ...], kernel_shape: tuple[int, ...]
                 ) -> tuple[dict[str, int], tuple[int, ...], str]:
    """({index: size}, the dims ``...`` stands for, the output spec) of ``input,kernel->output``."""
    operands, output = equation.replace(" ", "").split("->")
    input_spec, kernel_spec = operands.split(",")
    if "..." in kernel_spec:
        raise NoFormula(f"einsum equation {equation!r} has an ellipsis in the kernel")
    before, _, after = input_spec.partition("...")
    after_start = len(input_shape) - len(after)
    elided = tuple(input_shape[len(before):after_start]) if "..." in input_spec else ()
    if len(before) + len(elided) + len(after) != len(input_shape) or any(d is None or d < 0 for d in input_shape):
        raise NoFormula(f"einsum {equation!r} does not fit input shape {input_shape}, or it is not fully known")
    input_sizes = {**dict(zip(before, input_shape)), **dict(zip(after, input_shape[after_start:]))}
    return {**input_sizes, **dict(zip(kernel_spec, kernel_shape))}, elided, output
