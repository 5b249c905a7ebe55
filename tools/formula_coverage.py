"""How much of a model's graph FLOPs fall in layers that have a formula, and how close 2*MACs come.

Usage: PYTHONPATH=$PWD python tools/formula_coverage.py [model ...]
Models: Xception, NASNetMobile, EfficientNetB0, MobileNetV3Small, ... (keras.applications,
weights=None, input shape 96x96x3) and the hand-built text_cnn, unet, video_cnn. Each is
profiled with ``tfprofscale.profile(model, trace=False, steps=2, warmup=1)`` at batch 1.

Prints per model: graph FLOPs (tfprof), coverage = graph FLOPs of layers with a formula /
all graph FLOPs, 2*MACs / graph FLOPs over the same (supported) layers, formula FLOPs /
graph FLOPs over the same layers, and the layer types without a formula.
"""
from __future__ import annotations

import os
import sys
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import tfprofscale  # noqa: E402

#: keras.applications models run by default; any other name of keras.applications works too.
APPLICATIONS = ["Xception", "NASNetMobile", "EfficientNetB0", "MobileNetV3Small", "MobileNetV2", "ResNet50",
                "DenseNet121", "InceptionV3", "ConvNeXtTiny", "EfficientNetV2B0", "VGG16"]
INPUT_SHAPE = (96, 96, 3)


def text_cnn() -> keras.Model:
    """Kim (2014)-style: embedding, three Conv1D widths, global max pooling, concatenate, dense."""
    tokens = keras.Input((100,), dtype="int32")
    x = keras.layers.Embedding(20_000, 128)(tokens)
    pooled = [keras.layers.GlobalMaxPooling1D()(keras.layers.Conv1D(100, k, activation="relu")(x))
              for k in (3, 4, 5)]
    x = keras.layers.Dropout(0.5)(keras.layers.Concatenate()(pooled))
    return keras.Model(tokens, keras.layers.Dense(2, activation="softmax")(x), name="text_cnn")


def unet() -> keras.Model:
    """A two-level U-Net: Conv2D, MaxPooling2D, Conv2DTranspose, UpSampling2D, Concatenate."""
    image = keras.Input((64, 64, 3))
    d1 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    d2 = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(d1))
    b = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(d2))
    u2 = keras.layers.Conv2DTranspose(32, 2, strides=2, padding="same")(b)
    u2 = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(keras.layers.Concatenate()([u2, d2]))
    u1 = keras.layers.UpSampling2D()(u2)
    u1 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(keras.layers.Concatenate()([u1, d1]))
    return keras.Model(image, keras.layers.Conv2D(2, 1, activation="softmax")(u1), name="unet")


def video_cnn() -> keras.Model:
    """A small C3D-like stack: Conv3D, MaxPooling3D, GlobalAveragePooling3D, Dense."""
    clip = keras.Input((8, 32, 32, 3))
    x = keras.layers.Conv3D(16, 3, padding="same", activation="relu")(clip)
    x = keras.layers.MaxPooling3D((1, 2, 2))(x)
    x = keras.layers.Conv3D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(clip, keras.layers.Dense(10)(x), name="video_cnn")


HAND_BUILT = {"text_cnn": text_cnn, "unet": unet, "video_cnn": video_cnn}


def build(name: str) -> keras.Model:
    if name in HAND_BUILT:
        return HAND_BUILT[name]()
    return getattr(keras.applications, name)(weights=None, input_shape=INPUT_SHAPE)


def coverage_line(name: str) -> str:
    report = tfprofscale.profile(build(name), trace=False, steps=2, warmup=1)
    graph = report.totals.graph_flops
    supported = [row for row in report.layers if row.supported]
    covered = sum(row.graph_flops or 0 for row in supported)
    macs = sum(row.analytic_macs for row in supported)
    formula = sum(row.analytic_flops for row in supported)
    missing = Counter(row.type for row in report.layers if not row.supported)
    missing_flops = Counter()
    for row in report.layers:
        if not row.supported:
            missing_flops[row.type] += row.graph_flops or 0
    without = ", ".join(f"{t} x{n} ({missing_flops[t] / graph:.2%})" for t, n in missing.most_common()) or "-"
    return (f"{name:18s} graph {graph / 1e6:10.2f} MFLOPs  coverage {covered / graph:8.4%}  "
            f"2*MACs/graph(same layers) {2 * macs / covered:.4f}  formula/graph(same layers) {formula / covered:.4f}"
            f"  no formula: {without}")


if __name__ == "__main__":
    for model_name in sys.argv[1:] or [*APPLICATIONS, *HAND_BUILT]:
        try:
            print(coverage_line(model_name), flush=True)
        except Exception as error:  # report and go on to the next model
            print(f"{model_name:18s} failed: {type(error).__name__}: {str(error).splitlines()[0][:150]}", flush=True)
        keras.backend.clear_session()
