"""Recurrent layers: T steps of a cell, and the wrappers Bidirectional and TimeDistributed.

A cell step on a batch of B works on n state elements per example (``units``,
or ``filters`` times the output map for ConvLSTM). Its input product has
``gates * n * input_fan_in`` multiply-adds (fan-in = kernel taps x input
channels; 1 x D for a dense cell) and its recurrent product
``gates * n * recurrent_fan_in``, so an LSTM of T steps costs
``T * B * (2 * D * 4U + 2 * U * 4U)`` flops in its matmuls, plus the named
elementwise terms of its cell. ``return_sequences``, ``go_backwards``,
``stateful`` and ``unroll`` do not change the work; a Keras mask adds a select
per output and state element per step; dropout does nothing at inference.
A recurrent output depends on every earlier step, so the receptive field
after one is reported unknown rather than guessed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from tfprofscale.formulas.calls import call_uses_mask
from tfprofscale.formulas.registry import Formula, NoFormula, activation_of, formula_for, layer_cost
from tfprofscale.records import LayerCost, LayerInfo, Shape


@dataclass(frozen=True)
class _Steps:
    """The sizes of T cell steps on a batch: per-example state elements and fan-ins."""

    batch: int
    steps: int
    state_elements: int
    input_fan_in: int
    recurrent_fan_in: int
    gates: int

    @property
    def rows(self) -> int:
        """State elements over all steps and examples: what each elementwise term runs on."""
        return self.steps * self.batch * self.state_elements

    @property
    def input_macs(self) -> int:
        return self.rows * self.gates * self.input_fan_in

    @property
    def recurrent_macs(self) -> int:
        return self.rows * self.gates * self.recurrent_fan_in


def _per_element(function: Any) -> int:
    return activation_of(function)[1]


def _lstm_terms(cell: Any, s: _Steps) -> dict[str, int]:
    """i, f, o = sigmoid(.), g = tanh(.); c = f*c + i*g; h = o*tanh(c); z = xW + hU + b."""
    n = s.rows
    return {"input_matmul": 2 * s.input_macs, "recurrent_matmul": 2 * s.recurrent_macs,
            "matmul_sum": 4 * n, "bias_adds": 4 * n if cell.use_bias else 0,
            "gate_activations": 3 * n * _per_element(cell.recurrent_activation) + n * _per_element(cell.activation),
            "cell_update": 3 * n,
            "output_activation": n * _per_element(cell.activation), "hidden_output": n}


def _gru_terms(cell: Any, s: _Steps) -> dict[str, int]:
    """z, r = sigmoid(x + h U); hh = tanh(x_h + r * (h U_h)) (reset_after) or tanh(x_h + (r*h) U_h);
    h = z*h + (1-z)*hh. With reset_after the recurrent product has its own bias."""
    n = s.rows
    bias_rows = 2 if cell.reset_after else 1
    return {"input_matmul": 2 * s.input_macs, "recurrent_matmul": 2 * s.recurrent_macs,
            "bias_adds": 3 * n * bias_rows if cell.use_bias else 0,
            "gate_sums": 2 * n, "reset": n, "candidate_sum": n,
            "gate_activations": 2 * n * _per_element(cell.recurrent_activation) + n * _per_element(cell.activation),
            "state_update": 4 * n}


def _simple_rnn_terms(cell: Any, s: _Steps) -> dict[str, int]:
    """h = activation(x W + b + h U)."""
    n = s.rows
    return {"input_matmul": 2 * s.input_macs, "recurrent_matmul": 2 * s.recurrent_macs,
            "bias_adds": n if cell.use_bias else 0, "matmul_sum": n,
            "activations": n * _per_element(cell.activation)}


#: cell class name -> (gates, number of states, elementwise terms)
_CELLS: dict[str, tuple[int, int, Callable[[Any, _Steps], dict[str, int]]]] = {
    "LSTMCell": (4, 2, _lstm_terms), "ConvLSTMCell": (4, 2, _lstm_terms),
    "GRUCell": (3, 1, _gru_terms), "SimpleRNNCell": (1, 1, _simple_rnn_terms),
}


_RNN_TYPES = ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


@formula_for(*_RNN_TYPES)
def _recurrent(info: LayerInfo) -> Formula:
    """T steps of the layer's cell (an ``RNN`` layer counts if its cell is a Keras cell)."""
    cell = info.layer.cell
    gates, _, cell_terms = _cell_entry(cell)
    steps = _steps_of(info, gates)
    return Formula(
        terms={**cell_terms(cell, steps), "mask_selects": _mask_selects(info) if call_uses_mask(info.layer) else 0},
        macs=steps.input_macs + steps.recurrent_macs,
        params=int(info.layer.count_params()),
        geometry={**asdict(steps), "cell": type(cell).__name__,
                  "return_sequences": bool(info.layer.return_sequences)},
        mixes_all_positions=True)


def _cell_entry(cell: Any) -> tuple[int, int, Callable[[Any, _Steps], dict[str, int]]]:
    name = type(cell).__name__
    if name not in _CELLS:
        raise NoFormula(f"no formula for recurrent cell {name}")
    return _CELLS[name]


def _steps_of(info: LayerInfo, gates: int) -> _Steps:
    layer, input_shape = info.layer, info.input_shapes[0]
    if any(d is None or d < 0 for d in input_shape):
        raise NoFormula(f"{info.type} {info.name!r}: input shape {input_shape} is not fully known (time steps?)")
    batch, steps = input_shape[0], input_shape[1]
    per_step = info.output_shape[2:] if layer.return_sequences else info.output_shape[1:]
    cell = layer.cell
    if hasattr(cell, "kernel_size"):
        taps = math.prod(cell.kernel_size)
        channels = input_shape[2] if cell.data_format == "channels_first" else input_shape[-1]
        return _Steps(batch, steps, math.prod(per_step), taps * channels, taps * cell.filters, gates)
    return _Steps(batch, steps, math.prod(per_step), input_shape[-1], cell.units, gates)


def _mask_selects(info: LayerInfo) -> int:
    """A masked step keeps the previous output and states: one select per element of each."""
    states = _cell_entry(info.layer.cell)[1]
    return _steps_of(info, gates=1).rows * (1 + states)


# ------------------------------------------------------------- wrappers


_MERGE_FLOPS_PER_ELEMENT = {"concat": 0, None: 0, "sum": 1, "mul": 1, "ave": 2}


@formula_for("Bidirectional")
def _bidirectional(info: LayerInfo) -> Formula:
    """The forward and backward layers by their own formulas, plus the merge (sum, mul, ave)."""
    layer, input_shape = info.layer, info.input_shapes[0]
    inner_infos = [_inner_info(info, inner, input_shape) for inner in (layer.forward_layer, layer.backward_layer)]
    costs = [_inner_cost(inner) for inner in inner_infos]
    masked = call_uses_mask(layer)
    terms: dict[str, int] = {}
    for inner, cost in zip(inner_infos, costs):
        inner_terms = {**cost.terms, "mask_selects": cost.terms.get("mask_selects", 0)
                       + (_mask_selects(inner) if masked and inner.type in _RNN_TYPES else 0)}
        for name, value in inner_terms.items():
            terms[name] = terms.get(name, 0) + value
    merged_elements = math.prod(inner_infos[0].output_shape)
    terms["merge"] = _MERGE_FLOPS_PER_ELEMENT[layer.merge_mode] * merged_elements
    return Formula(
        terms=terms, macs=sum(cost.macs for cost in costs), params=sum(cost.params for cost in costs),
        geometry={"merge_mode": layer.merge_mode, "forward": costs[0].geometry, "backward": costs[1].geometry},
        mixes_all_positions=True)


@formula_for("TimeDistributed")
def _time_distributed(info: LayerInfo) -> Formula:
    """The inner layer's formula on one step's slice (batch, *rest), times the T steps Keras runs."""
    input_shape, output_shape = info.input_shapes[0], info.output_shape
    steps = input_shape[1]
    if steps is None or steps < 0:
        raise NoFormula(f"TimeDistributed {info.name!r}: the number of steps in {input_shape} is not known")
    inner = info.layer.layer
    cost = _inner_cost(LayerInfo(name=f"{info.name}/{inner.name}", type=type(inner).__name__,
                                 input_shapes=((input_shape[0], *input_shape[2:]),),
                                 output_shape=(output_shape[0], *output_shape[2:]), layer=inner))
    return Formula(terms={name: steps * value for name, value in cost.terms.items()},
                   macs=steps * cost.macs, params=cost.params,
                   geometry={"steps": steps, "inner_type": type(inner).__name__, "inner": cost.geometry})


def _inner_info(info: LayerInfo, inner: Any, input_shape: Shape) -> LayerInfo:
    output = inner.compute_output_shape(input_shape)
    while isinstance(output, (list, tuple)) and output and isinstance(output[0], (list, tuple)):
        output = output[0]
    return LayerInfo(name=f"{info.name}/{inner.name}", type=type(inner).__name__,
                     input_shapes=(input_shape,), output_shape=tuple(output), layer=inner)


def _inner_cost(inner: LayerInfo) -> LayerCost:
    cost = layer_cost(inner)
    if not cost.supported:
        raise NoFormula(f"inner layer {inner.name!r}: {cost.geometry.get('unsupported_reason')}")
    return cost
