"""Views, copies, inputs, lookups and the layers that are the identity at inference."""
from __future__ import annotations

import math

from tfprofscale.formulas.registry import Formula, Window, formula_for
from tfprofscale.records import LayerInfo

#: Layers that only act in training (noise, dropout, ...): the identity at inference.
IDENTITY_AT_INFERENCE = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                         "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity")

#: Image augmentations whose inference graph is the identity (no op at all under the layer).
#: Others draw random numbers even at inference (RandomHue, MixUp ...) or crop (RandomCrop): not here.
AUGMENTATION_IDENTITY_AT_INFERENCE = (
    "RandomBrightness", "RandomColorJitter", "RandomContrast", "RandomElasticTransform", "RandomErasing",
    "RandomFlip", "RandomGaussianBlur", "RandomInvert", "RandomPerspective", "RandomRotation", "RandomShear",
    "RandomTranslation", "RandomZoom", "Solarization", "AugMix", "CutMix", "RandAugment")


@formula_for("Flatten", "Reshape", *IDENTITY_AT_INFERENCE, *AUGMENTATION_IDENTITY_AT_INFERENCE)
def _view(info: LayerInfo) -> Formula:
    """A view or the identity at inference: no work, no new memory."""
    return Formula(terms={}, macs=0, params=0, allocates_output=False)


@formula_for("Permute", "RepeatVector")
def _copy(info: LayerInfo) -> Formula:
    """A transposed or tiled copy of the input: no arithmetic, a new output."""
    return Formula(terms={}, macs=0, params=0, geometry={"elements": math.prod(info.output_shape)})


@formula_for("ActivityRegularization")
def _activity_regularization(info: LayerInfo) -> Formula:
    """The identity on its output, plus the penalty Keras adds to the losses even at inference.

    Per non-zero weight: l1 = |x| per element, ``e - 1`` adds, a scale and an
    add into the loss (``2e + 1``); l2 the same with squares; then one divide
    of the loss by the batch size.
    """
    layer, elements = info.layer, math.prod(info.output_shape)
    penalties = (layer.l1 != 0) + (layer.l2 != 0)
    return Formula(terms={"penalty": penalties * (2 * elements + 1), "per_example": 1},
                   macs=0, params=0, geometry={"elements": elements, "l1": layer.l1, "l2": layer.l2},
                   allocates_output=False)


@formula_for("Masking")
def _masking(info: LayerInfo) -> Formula:
    """Per element a comparison with ``mask_value`` and a select; per timestep an any() over the features."""
    shape = info.output_shape
    elements, timesteps = math.prod(shape), math.prod(shape[:-1])
    return Formula(terms={"compares": elements, "any_reduction": elements - timesteps, "selects": elements},
                   macs=0, params=0, geometry={"elements": elements, "timesteps": timesteps})


@formula_for("InputLayer")
def _input_layer(info: LayerInfo) -> Formula:
    return Formula(terms={}, macs=0, params=0)


@formula_for("Embedding")
def _embedding(info: LayerInfo) -> Formula:
    """A gather of rows: no arithmetic; params = vocabulary * dimension. Its output is a map over the
    token positions (one token per position), where a receptive field in tokens starts."""
    layer, positions = info.layer, tuple(info.output_shape[1:-1])
    ones = (1,) * len(positions)
    return Formula(terms={}, macs=0, params=layer.input_dim * layer.output_dim,
                   geometry={"vocabulary": layer.input_dim, "dimension": layer.output_dim},
                   window=Window(ones, ones, ones, positions) if positions else None)
