"""Views, inputs and lookups: layers that move data but do no arithmetic."""
from __future__ import annotations

from tfprofscale.formulas.registry import Formula, formula_for
from tfprofscale.profiling.records import LayerInfo

@formula_for("Flatten", "Reshape", "Dropout")
def _view(info: LayerInfo) -> Formula:
    """A view or the identity at inference: no work, no new memory."""
    return Formula(terms={}, macs=0, params=0, allocates_output=False)


@formula_for("InputLayer")
def _input_layer(info: LayerInfo) -> Formula:
    return Formula(terms={}, macs=0, params=0)


@formula_for("Embedding")
def _embedding(info: LayerInfo) -> Formula:
    """A gather of rows: no arithmetic; params = vocabulary * dimension."""
    layer = info.layer
    return Formula(terms={}, macs=0, params=layer.input_dim * layer.output_dim,
                    geometry={"vocabulary": layer.input_dim, "dimension": layer.output_dim})
