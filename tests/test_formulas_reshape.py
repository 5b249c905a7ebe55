"""Copies, views, identity-at-inference layers and preprocessing: hand arithmetic and tfprof (batch 2)."""
from __future__ import annotations

import keras
import pytest

from tests.layer_harness import branches, costed, single_layer_cost
from tfprofscale.formulas.reshape import AUGMENTATION_IDENTITY_AT_INFERENCE

layers = keras.layers
SEQUENCE = 2 * 3 * 4          # batch 2 of (3, 4)
IMAGE = 2 * 6 * 6 * 3         # batch 2 of 6x6x3


@pytest.fixture(scope="module")
def sequence_zoo():
    return costed(branches((3, 4), [
        layers.Permute((2, 1), name="permute"), layers.Masking(0.0, name="masking"),
        layers.SpatialDropout1D(0.5, name="spatial_dropout"), layers.GaussianNoise(0.1, name="gaussian_noise"),
        layers.GaussianDropout(0.1, name="gaussian_dropout"), layers.AlphaDropout(0.1, name="alpha_dropout"),
        layers.Identity(name="identity"), layers.ActivityRegularization(l1=0.01, l2=0.1, name="activity_l1_l2"),
    ]), batch=2)


@pytest.fixture(scope="module")
def image_zoo():
    return costed(branches((6, 6, 3), [
        layers.Rescaling(1 / 255, offset=-0.5, name="rescaling"),
        layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0], name="normalization"),
        layers.Normalization(axis=None, mean=0.5, variance=2.0, invert=True, name="normalization_scalar"),
        layers.Resizing(4, 4, name="resize_bilinear"), layers.Resizing(9, 9, interpolation="nearest",
                                                                       name="resize_nearest"),
        layers.CenterCrop(4, 5, name="center_crop"), layers.CenterCrop(8, 8, name="center_crop_up"),
    ]), batch=2)


@pytest.mark.parametrize("name", ["permute", "spatial_dropout", "gaussian_noise", "gaussian_dropout",
                                  "alpha_dropout", "identity"])
def test_moving_data_costs_nothing(sequence_zoo, name):
    cost = sequence_zoo.costs[name]
    assert cost.supported and (cost.flops, cost.macs) == (0, 0)
    assert sequence_zoo.graph_flops.get(name, 0) == 0


def test_identity_at_inference_allocates_nothing_and_a_permutation_a_new_tensor(sequence_zoo):
    assert sequence_zoo.costs["identity"].activation_bytes == 0
    assert sequence_zoo.costs["gaussian_noise"].activation_bytes == 0
    assert sequence_zoo.costs["permute"].activation_bytes == SEQUENCE * 4


def test_repeat_vector_is_a_tiled_copy():
    cost = single_layer_cost(layers.RepeatVector(3), (5,), batch=2)
    assert (cost.flops, cost.output_elements, cost.activation_bytes) == (0, 2 * 3 * 5, 2 * 3 * 5 * 4)


def test_masking_by_hand_and_what_tensorflow_counts(sequence_zoo):
    cost = sequence_zoo.costs["masking"]
    # per element a != mask_value and a select; per timestep an any() over 4 features (3 ORs)
    assert cost.terms == {"compares": SEQUENCE, "any_reduction": SEQUENCE - 2 * 3, "selects": SEQUENCE}
    assert sequence_zoo.graph_flops["masking"] == SEQUENCE          # NotEqual only: Any, SelectV2 uncounted


def test_activity_regularization_penalty_by_hand_and_what_tensorflow_counts(sequence_zoo):
    cost = sequence_zoo.costs["activity_l1_l2"]
    # l1: |x| (24), sum (23), * l1, + into the loss; l2 the same with squares; / batch size.
    assert cost.flops == 2 * (SEQUENCE + (SEQUENCE - 1) + 1 + 1) + 1 == 99
    # The penalty feeds only the loss, which an inference step never fetches: the function runtime prunes
    # those ops, and so does the graph count (before pruning tfprof counted 99 - 24 - 1: no Abs, DivNoNan).
    assert sequence_zoo.graph_flops["activity_l1_l2"] == 0


@pytest.mark.parametrize("name", ["rescaling", "center_crop"])
def test_preprocessing_agrees_with_tfprof(image_zoo, name):
    assert image_zoo.costs[name].flops == image_zoo.graph_flops.get(name, 0)


def test_rescaling_and_normalization_by_hand(image_zoo):
    assert image_zoo.costs["rescaling"].terms == {"scale": IMAGE, "offset": IMAGE}
    # (x - mean) / max(sqrt(var), eps): 2 per element, a sqrt and a clamp per channel.
    assert image_zoo.costs["normalization"].flops == 2 * IMAGE + 2 * 3
    assert image_zoo.costs["normalization_scalar"].flops == 2 * IMAGE + 2 * 1


def test_normalization_tensorflow_has_no_statistics_for_sqrt(image_zoo):
    assert image_zoo.graph_flops["normalization"] == image_zoo.costs["normalization"].flops - 3
    assert image_zoo.graph_flops["normalization_scalar"] == image_zoo.costs["normalization_scalar"].flops - 1


def test_resizing_by_hand_and_invisible_to_tfprof(image_zoo):
    assert image_zoo.costs["resize_bilinear"].flops == 2 * 4 * 4 * 3 * 9          # 3 lerps of 3 per output
    assert image_zoo.costs["resize_nearest"].flops == 0
    assert image_zoo.costs["center_crop_up"].flops == 2 * 8 * 8 * 3 * 9           # smaller than 8x8: resized up
    for name, op in (("resize_bilinear", "ResizeBilinear"), ("center_crop_up", "ResizeBilinear")):
        assert op in image_zoo.op_types[name] and image_zoo.graph_flops.get(name, 0) == 0


def test_normalization_to_be_adapted_counts_its_statistics_as_keras_does():
    cost = single_layer_cost(layers.Normalization(), (5, 3))
    assert cost.flops == 2 * 5 * 3 + 2 * 3
    assert cost.params == 3 + 3 + 1                # adapt_mean, adapt_variance, count


@pytest.fixture(scope="module")
def augmentation_zoo():
    """Every augmentation registered as the identity at inference, on one 8x8x3 input."""
    arguments = {"RandomBrightness": {"factor": 0.1}, "RandomColorJitter": {"brightness_factor": 0.1},
                 "RandomContrast": {"factor": 0.1}, "RandomRotation": {"factor": 0.1},
                 "RandomShear": {"x_factor": 0.1}, "RandomTranslation": {"height_factor": 0.1, "width_factor": 0.1},
                 "RandomZoom": {"height_factor": 0.1}, "Solarization": {"addition_factor": 0.1}}
    return costed(branches((8, 8, 3), [getattr(layers, name)(name=name, **arguments.get(name, {}))
                                       for name in AUGMENTATION_IDENTITY_AT_INFERENCE]), batch=1)


@pytest.mark.parametrize("name", AUGMENTATION_IDENTITY_AT_INFERENCE)
def test_augmentations_have_no_op_at_inference(augmentation_zoo, name):
    assert set(augmentation_zoo.op_types.get(name, [])) <= {"Identity", "Const", "Placeholder", "NoOp"}
    cost = augmentation_zoo.costs[name]
    assert (cost.flops, cost.activation_bytes) == (0, 0)
