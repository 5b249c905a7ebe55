"""Backward formulas of the feed-forward layers: dense, convolutions, pooling, normalization, activations,
merges, views, dropout and embeddings (see ``backward_registry`` for how the parts are charged).

Dense and convolutions: dL/dX and dL/dW each repeat the forward's multiply-adds
(``dY W^T`` and ``X^T dY``; for a convolution a transposed convolution of dY and a
correlation of X with dY, whatever the stride, groups or depthwise multiplier:
every forward tap is one multiply-add in each), the bias gradient is
``outputs - bias size`` adds, the activation's gradient is per output element.
"""
from __future__ import annotations

from tfprofscale.formulas.backward_registry import (BackwardParts, NoBackward, activation_grad_flops,
                                                    backward_formula_for, bias_grad_flops, elements)
from tfprofscale.formulas.convolution import CONVOLUTION_TYPES
from tfprofscale.formulas.reshape import AUGMENTATION_IDENTITY_AT_INFERENCE
from tfprofscale.records import LayerCost, LayerInfo


def _bias_size(layer) -> int:
    bias = getattr(layer, "bias", None)
    return elements(tuple(bias.shape)) if bias is not None else 0


def _linear_map(info: LayerInfo, cost: LayerCost, multiply_adds_flops: int) -> BackwardParts:
    """dX = dY W^T and dW = X^T dY, each the forward's multiply-adds; the bias and activation gradients."""
    outputs = elements(info.output_shape)
    return BackwardParts(
        input={"input_matmul": multiply_adds_flops},
        weight={"weight_matmul": multiply_adds_flops, **bias_grad_flops(outputs, _bias_size(info.layer))},
        shared=activation_grad_flops(cost.geometry.get("activation", "linear"), outputs),
        diagnostics={"padded_taps": 2 * cost.terms["padded_taps"]} if cost.terms.get("padded_taps") else {})


@backward_formula_for("Dense", "EinsumDense")
def _dense(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    if getattr(info.layer, "lora_enabled", False):
        raise NoBackward(f"{info.type} {info.name!r} with LoRA has no backward formula")
    return _linear_map(info, cost, cost.terms["multiply_adds"])


@backward_formula_for(*(CONVOLUTION_TYPES - {"SeparableConv1D", "SeparableConv2D"}))
def _convolution(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Conv2DBackpropInput / Conv2DBackpropFilter (and their depthwise and transposed kin)."""
    return _linear_map(info, cost, cost.terms["multiply_adds"])


@backward_formula_for("SeparableConv1D", "SeparableConv2D")
def _separable_convolution(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """The pointwise input gradient (dL/d middle maps) is needed by the depthwise kernel's gradient too."""
    depthwise, pointwise = cost.terms["depthwise_multiply_adds"], cost.terms["pointwise_multiply_adds"]
    outputs = elements(info.output_shape)
    return BackwardParts(
        input={"depthwise_input_grad": depthwise},
        weight={"pointwise_weight_grad": pointwise, "depthwise_weight_grad": depthwise,
                **bias_grad_flops(outputs, _bias_size(info.layer))},
        shared={"pointwise_input_grad": pointwise,
                **activation_grad_flops(cost.geometry.get("activation", "linear"), outputs)})


# -- pooling and resizing -------------------------------------------------------------------------


def _pool_area(cost: LayerCost) -> int:
    return elements(tuple(v for k, v in cost.geometry.items() if k.startswith("pool_")))


@backward_formula_for("MaxPooling1D", "MaxPooling2D", "MaxPooling3D")
def _max_pooling(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Each output's gradient added where its maximum was: one add per output. TensorFlow's ``MaxPoolGrad``
    also recomputes the maxima (window taps per output, counted by tfprof): a diagnostic here."""
    outputs = elements(info.output_shape)
    return BackwardParts(input={"gradient_scatter": outputs},
                         diagnostics={"argmax_recompute": _pool_area(cost) * outputs})


@backward_formula_for("AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def _average_pooling(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Per output and window tap, dy scaled by 1/area and added into the input (2, as tfprof counts AvgPoolGrad)."""
    return BackwardParts(input={"gradient_spread": 2 * _pool_area(cost) * elements(info.output_shape)})


@backward_formula_for("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D")
def _global_average_pooling(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """TensorFlow's Mean gradient: dy broadcast to the input, one divide per input element."""
    if cost.geometry.get("masked"):
        raise NoBackward(f"masked {info.type} has no backward formula")
    return BackwardParts(input={"gradient_spread": elements(info.input_shapes[0])})


@backward_formula_for("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")
def _global_max_pooling(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """TensorFlow's Max gradient: per input element a comparison with the maximum, a count of the ties,
    a divide by it and a multiply by dy (4)."""
    return BackwardParts(input={"gradient_select": 4 * elements(info.input_shapes[0])})


@backward_formula_for("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Nearest: each input sums the gradients of its copies (``outputs - inputs`` adds)."""
    if cost.geometry.get("interpolation", "nearest") != "nearest":
        raise NoBackward(f"{info.type} {info.name!r}: interpolated upsampling has no backward formula")
    return BackwardParts(input={"gradient_sum": elements(info.output_shape) - elements(info.input_shapes[0])})


# -- normalization ---------------------------------------------------------------------------------


@backward_formula_for("BatchNormalization")
def _batch_normalization(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Training mode (Ioffe and Szegedy), E elements: x_hat = (x - mean) * inv_std (2E), sum(dy) (E) and
    sum(dy * x_hat) (2E) are dbeta and dgamma and are needed by dx = gamma * inv_std / m * (m dy - sum(dy)
    - x_hat sum(dy x_hat)) (5E). A frozen layer (``trainable=False``) runs in inference mode:
    dx = dy * gamma * inv_std (E)."""
    n = elements(info.input_shapes[0])
    if not info.layer.trainable:
        return BackwardParts(input={"scale": n}, note="frozen: inference-mode batch norm")
    return BackwardParts(input={"input_grad": 5 * n},
                         shared={"normalized_input": 2 * n, "gradient_sums": 3 * n})


@backward_formula_for("LayerNormalization", "GroupNormalization")
def _moments_normalization(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Per normalized row, E elements: x_hat recomputed (2E, shared); dgamma = sum over rows of dy x_hat (2E),
    dbeta = sum of dy (E); dx: g = gamma dy (E), sum(g) (E), sum(g x_hat) (2E), inv_std / n * (n g - sum(g)
    - x_hat sum(g x_hat)) (5E)."""
    layer, n = info.layer, elements(info.input_shapes[0])
    if getattr(layer, "rms_scaling", False):
        raise NoBackward(f"{info.type} {info.name!r} with rms_scaling has no backward formula")
    return BackwardParts(
        input={"input_grad": 8 * n, **({"gamma_scale": n} if layer.scale else {})},
        weight={**({"gamma_grad": 2 * n} if layer.scale else {}), **({"beta_grad": n} if layer.center else {})},
        shared={"normalized_input": 2 * n})


# -- activations and element-wise layers -------------------------------------------------------------


@backward_formula_for("Activation", "Softmax", "ELU", "LeakyReLU")
def _activation_layer(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    name = cost.geometry.get("activation")
    return BackwardParts(input=activation_grad_flops(name, cost.geometry.get("elements", elements(info.output_shape))))


@backward_formula_for("ReLU")
def _relu_layer(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """A comparison per element, one more for ``max_value``, a multiply for ``negative_slope``."""
    layer = info.layer
    per_element = 1 + (layer.max_value is not None) + (layer.negative_slope != 0)
    return BackwardParts(input={"activation_grad": per_element * elements(info.output_shape)})


@backward_formula_for("PReLU")
def _prelu(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """dx = dy where x > 0 else alpha * dy (2); dalpha = sum over shared axes of dy * x where x < 0 (3)."""
    n = elements(info.output_shape)
    return BackwardParts(input={"activation_grad": 2 * n}, weight={"alpha_grad": 3 * n})


#: Element-wise layers and their flops per element of the gradient they pass back (training mode): dropout
#: ``select(keep, dy * scale, 0)`` (2), Gaussian dropout a multiply by the noise, alpha dropout a select and
#: a multiply, Rescaling ``dy * scale``, Masking a select, views and copies nothing.
_PER_ELEMENT = {"Dropout": 2, "SpatialDropout1D": 2, "SpatialDropout2D": 2, "SpatialDropout3D": 2,
                "GaussianDropout": 1, "AlphaDropout": 2, "GaussianNoise": 0, "Identity": 0, "Rescaling": 1,
                "Masking": 1, "Flatten": 0, "Reshape": 0, "Permute": 0, "InputLayer": 0,
                "ZeroPadding1D": 0, "ZeroPadding2D": 0, "ZeroPadding3D": 0,
                "Cropping1D": 0, "Cropping2D": 0, "Cropping3D": 0, "Concatenate": 0}


@backward_formula_for(*_PER_ELEMENT)
def _per_element(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    per_element = _PER_ELEMENT[info.type]
    return BackwardParts(input={"elementwise_grad": per_element * elements(info.output_shape)} if per_element else {})


@backward_formula_for("RepeatVector")
def _repeat_vector(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Each input element sums the gradients of its n copies."""
    return BackwardParts(input={"gradient_sum": elements(info.output_shape) - elements(info.input_shapes[0])})


# -- merges ------------------------------------------------------------------------------------------

#: Flops per output element of each input's gradient: Add passes dy, Subtract negates it for the second
#: input, Multiply multiplies dy by the other inputs, Average divides dy once, Maximum/Minimum compare
#: and select for each pair (3: TensorFlow's MaximumGrad).
@backward_formula_for("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _elementwise_merge(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    inputs, n = len(info.input_shapes), elements(info.output_shape)
    per_output = {"Add": 0, "Subtract": 1, "Multiply": inputs * (inputs - 1), "Average": 1,
                  "Maximum": 3 * (inputs - 1), "Minimum": 3 * (inputs - 1)}[info.type]
    broadcast_sums = sum(n - elements(shape) for shape in info.input_shapes)
    terms = {"merge_grad": per_output * n} if per_output else {}
    return BackwardParts(input={**terms, **({"broadcast_sums": broadcast_sums} if broadcast_sums else {})})


@backward_formula_for("Dot")
def _dot(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Each operand's gradient is a product of dy with the other: the forward's multiply-adds each."""
    if info.layer.normalize:
        raise NoBackward(f"Dot {info.name!r} with normalize=True has no backward formula")
    return BackwardParts(input={"operand_grads": 2 * cost.terms["multiply_adds"]})


@backward_formula_for("Embedding")
def _embedding(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """No gradient for integer ids; dW adds each gathered row's dy into the table (one add per output
    element). TensorFlow carries it as IndexedSlices and sums duplicate rows when it is applied."""
    return BackwardParts(weight={"gradient_scatter": elements(info.output_shape)})


@backward_formula_for(*AUGMENTATION_IDENTITY_AT_INFERENCE)
def _augmentation(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    raise NoBackward(f"{info.type} transforms its input in training: no backward formula")
