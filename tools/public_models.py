"""Public Keras example models (keras.io examples, written again from memory, small sizes) and keras_hub backbones.

Nobody here designed these: they are what a new user brings. This file is a
model file (``--param name=vit``) and, run as a script, profiles every model
in a child process each (``nice``, ``--threads 1``) and prints one line per
model: formula coverage, layers with work and no time, kernel coverage of the
step, the memory estimate against the measured total, or the failure::

    PYTHONPATH=. python tools/public_models.py --out /tmp/public [--only vit,siamese]

The keras_hub backbones (``hub_*``) are built from their constructors with
small configurations (two layers), without weights: nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

PARAMS = {"name": "vit"}

#: --input-shape arguments a model needs (inputs it leaves undefined), by name.
INPUT_SHAPES = {
    "seq2seq": ["encoder_inputs=16,32", "decoder_inputs=12,40"],
    **{f"hub_{kind}": ["token_ids=64", "padding_mask=64"] for kind in ("distilbert", "roberta", "gpt2")},
    **{f"hub_{kind}": ["token_ids=64", "padding_mask=64", "segment_ids=64"] for kind in ("bert", "albert")},
}


def build_model(name: str = "vit"):
    """The named model (see ``BUILDERS``)."""
    return BUILDERS[name]()


def example_inputs(batch_size: int, name: str = "vit"):
    """Inputs for the subclassed ResNet (it has no keras.Input); None (tfprofscale makes them) for the others."""
    if name == "subclassed_resnet":
        return np.random.default_rng(0).standard_normal((batch_size, 32, 32, 3)).astype("float32")
    return None


def _keras():
    import keras

    return keras


def vit():
    """Image classification with Vision Transformer: patches, a patch encoder, two encoder blocks."""
    keras = _keras()
    layers, ops = keras.layers, keras.ops

    class Patches(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            patches = ops.image.extract_patches(images, size=self.patch_size)
            batch, h, w, c = ops.shape(patches)
            return ops.reshape(patches, (batch, h * w, c))

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
            return self.projection(patch) + self.position_embedding(positions)

    inputs = keras.Input((32, 32, 3))
    encoded = PatchEncoder(16, 32)(Patches(8)(inputs))
    for _ in range(2):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded)
        attention = layers.MultiHeadAttention(num_heads=4, key_dim=32, dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, encoded])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        for units in (64, 32):
            x3 = layers.Dropout(0.1)(layers.Dense(units, activation=keras.activations.gelu)(x3))
        encoded = layers.Add()([x3, x2])
    x = layers.Dropout(0.5)(layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(encoded)))
    x = layers.Dense(64, activation=keras.activations.gelu)(x)
    return keras.Model(inputs, layers.Dense(10)(x), name="vit")


def siamese():
    """Siamese network with a contrastive loss: one embedding tower called on both images, Euclidean distance."""
    keras = _keras()
    layers, ops = keras.layers, keras.ops
    tower_input = layers.Input((28, 28, 1))
    x = layers.BatchNormalization()(tower_input)
    x = layers.AveragePooling2D(2)(layers.Conv2D(4, 5, activation="tanh")(x))
    x = layers.AveragePooling2D(2)(layers.Conv2D(16, 5, activation="tanh")(x))
    x = layers.Dense(10, activation="tanh")(layers.BatchNormalization()(layers.Flatten()(x)))
    tower = keras.Model(tower_input, x, name="embedding_network")

    def euclidean_distance(vects):
        a, b = vects
        return ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=1, keepdims=True), keras.backend.epsilon()))

    left, right = layers.Input((28, 28, 1), name="left"), layers.Input((28, 28, 1), name="right")
    merged = layers.Lambda(euclidean_distance, output_shape=(1,))([tower(left), tower(right)])
    output = layers.Dense(1, activation="sigmoid")(layers.BatchNormalization()(merged))
    return keras.Model([left, right], output, name="siamese")


def autoencoder():
    """Convolutional autoencoder for image denoising."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    return keras.Model(inputs, layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x), name="autoencoder")


def pointnet():
    """PointNet classification: T-nets (Dot with a learned transform), shared MLPs as Conv1D, max pooling."""
    keras = _keras()
    layers, ops = keras.layers, keras.ops

    class OrthogonalRegularizer(keras.regularizers.Regularizer):
        def __init__(self, num_features, l2reg=0.001):
            self.num_features, self.l2reg = num_features, l2reg
            self.identity = ops.eye(num_features)

        def __call__(self, x):
            x = ops.reshape(x, (-1, self.num_features, self.num_features))
            xxt = ops.tensordot(x, x, axes=(2, 2))
            xxt = ops.reshape(xxt, (-1, self.num_features, self.num_features))
            return ops.sum(self.l2reg * ops.square(xxt - self.identity))

    def conv_bn(x, filters):
        x = layers.Conv1D(filters, kernel_size=1, padding="valid")(x)
        return layers.Activation("relu")(layers.BatchNormalization(momentum=0.0)(x))

    def dense_bn(x, filters):
        return layers.Activation("relu")(layers.BatchNormalization(momentum=0.0)(layers.Dense(filters)(x)))

    def tnet(inputs, num_features):
        bias = keras.initializers.Constant(np.eye(num_features).flatten())
        x = conv_bn(conv_bn(inputs, 16), 32)
        x = dense_bn(layers.GlobalMaxPooling1D()(x), 32)
        x = layers.Dense(num_features * num_features, kernel_initializer="zeros", bias_initializer=bias,
                         activity_regularizer=OrthogonalRegularizer(num_features))(x)
        feat_t = layers.Reshape((num_features, num_features))(x)
        return layers.Dot(axes=(2, 1))([inputs, feat_t])

    inputs = keras.Input(shape=(256, 3))
    x = conv_bn(conv_bn(tnet(inputs, 3), 16), 16)
    x = conv_bn(conv_bn(conv_bn(tnet(x, 16), 16), 32), 64)
    x = layers.Dropout(0.3)(dense_bn(layers.GlobalMaxPooling1D()(x), 32))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="pointnet")


def wide_deep():
    """Structured data, wide & deep: a dict of per-feature inputs, numeric and string, lookups and embeddings."""
    keras = _keras()
    layers = keras.layers
    numeric = {name: keras.Input((1,), name=name) for name in ("age", "hours_per_week", "capital_gain")}
    vocabularies = {"workclass": ["Private", "Self-emp", "Federal-gov", "Local-gov"],
                    "education": ["Bachelors", "HS-grad", "Masters", "Doctorate", "Some-college"]}
    strings = {name: keras.Input((1,), name=name, dtype="string") for name in vocabularies}
    wide_parts, deep_parts = [], [layers.Concatenate()(list(numeric.values()))]
    for name, vocabulary in vocabularies.items():
        ids = layers.StringLookup(vocabulary=vocabulary, name=f"{name}_lookup")(strings[name])
        wide_parts.append(layers.CategoryEncoding(len(vocabulary) + 1, output_mode="one_hot")(ids))
        deep_parts.append(layers.Flatten()(layers.Embedding(len(vocabulary) + 1, 8)(ids)))
    wide = layers.BatchNormalization()(layers.Concatenate()(wide_parts + [deep_parts[0]]))
    deep = layers.Concatenate()(deep_parts)
    for units in (32, 32):
        deep = layers.Dropout(0.1)(layers.ReLU()(layers.BatchNormalization()(layers.Dense(units)(deep))))
    merged = layers.Concatenate()([wide, deep])
    return keras.Model({**numeric, **strings}, layers.Dense(1, activation="sigmoid")(merged), name="wide_deep")


def seq2seq():
    """Character-level sequence to sequence (English to French): LSTM encoder states start the LSTM decoder."""
    keras = _keras()
    layers = keras.layers
    encoder_inputs = keras.Input(shape=(None, 32), name="encoder_inputs")
    _, state_h, state_c = layers.LSTM(64, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, 40), name="decoder_inputs")
    decoder_outputs, _, _ = layers.LSTM(64, return_sequences=True, return_state=True)(
        decoder_inputs, initial_state=[state_h, state_c])
    outputs = layers.Dense(40, activation="softmax")(decoder_outputs)
    return keras.Model([encoder_inputs, decoder_inputs], outputs, name="seq2seq")


def cnn_lstm_video():
    """Video classification: a small CNN applied per frame (TimeDistributed), then an LSTM over the frames."""
    keras = _keras()
    layers = keras.layers
    frames = keras.Input((8, 32, 32, 3))
    x = layers.TimeDistributed(layers.Conv2D(16, 3, activation="relu"))(frames)
    x = layers.TimeDistributed(layers.MaxPooling2D(2))(x)
    x = layers.TimeDistributed(layers.Conv2D(32, 3, activation="relu"))(x)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D())(x)
    x = layers.Dropout(0.4)(layers.LSTM(32)(x))
    return keras.Model(frames, layers.Dense(5, activation="softmax")(x), name="cnn_lstm_video")


def style_transfer_vgg():
    """Neural style transfer's feature extractor: VGG19 (no weights) with a dict of the style and content layers."""
    keras = _keras()
    vgg = keras.applications.VGG19(weights=None, include_top=False, input_shape=(64, 64, 3))
    names = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1", "block5_conv2"]
    outputs = {name: vgg.get_layer(name).output for name in names}
    return keras.Model(vgg.inputs, outputs, name="style_transfer_vgg")


def wgan_critic():
    """WGAN-GP critic for 28x28 images: padded, strided 5x5 convolutions, LeakyReLU, dropout, one score."""
    keras = _keras()
    layers = keras.layers
    image = keras.Input((28, 28, 1))
    x = layers.ZeroPadding2D((2, 2))(image)
    for filters, batch_norm, dropout in ((64, False, False), (128, False, True), (256, False, True),
                                         (512, False, False)):
        x = layers.Conv2D(filters, 5, strides=2, padding="same", use_bias=True)(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(0.3)(x) if dropout else x
    x = layers.Dropout(0.2)(layers.Flatten()(x))
    return keras.Model(image, layers.Dense(1)(x), name="wgan_critic")


def char_rnn():
    """Character-level text generation: one LSTM over one-hot characters, softmax over the next character."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((40, 57))
    return keras.Model(inputs, layers.Dense(57, activation="softmax")(layers.LSTM(128)(inputs)), name="char_rnn")


def text_vectorization_cnn():
    """Text classification from scratch, end to end: raw strings -> TextVectorization -> the trained model."""
    keras = _keras()
    layers = keras.layers
    vectorize = layers.TextVectorization(max_tokens=2000, output_mode="int", output_sequence_length=100)
    vectorize.adapt(["this movie was great", "a terrible film, awful acting", "the plot was fine and the cast good",
                     "I loved every minute of it", "boring and too long"])
    tokens = keras.Input(shape=(None,), dtype="int64")
    x = layers.Dropout(0.5)(layers.Embedding(2000, 32)(tokens))
    x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Dropout(0.5)(layers.Dense(32, activation="relu")(layers.GlobalMaxPooling1D()(x)))
    model = keras.Model(tokens, layers.Dense(1, activation="sigmoid", name="predictions")(x), name="classifier")
    raw = keras.Input(shape=(1,), dtype="string", name="review")
    return keras.Model(raw, model(vectorize(raw)), name="text_vectorization_cnn")


def subclassed_resnet():
    """Subclassing: a ResidualBlock layer and a ResNet-ish model, each with a call of its own."""
    keras = _keras()
    layers = keras.layers

    class ResidualBlock(layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.conv1 = layers.Conv2D(filters, 3, padding="same", use_bias=False)
            self.bn1 = layers.BatchNormalization()
            self.conv2 = layers.Conv2D(filters, 3, padding="same", use_bias=False)
            self.bn2 = layers.BatchNormalization()

        def call(self, x, training=False):
            y = keras.ops.relu(self.bn1(self.conv1(x), training=training))
            return keras.ops.relu(x + self.bn2(self.conv2(y), training=training))

    class ResNet(keras.Model):
        def __init__(self, num_classes=10):
            super().__init__(name="resnet")
            self.stem = layers.Conv2D(16, 3, padding="same", activation="relu")
            self.block1 = ResidualBlock(16)
            self.block2 = ResidualBlock(16)
            self.pool = layers.GlobalAveragePooling2D()
            self.classifier = layers.Dense(num_classes)

        def call(self, x, training=False):
            x = self.stem(x)
            x = self.block2(self.block1(x, training=training), training=training)
            return self.classifier(self.pool(x))

    return ResNet()


def _hub(kind: str):
    def build():
        import keras_hub

        common = dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128,
                      max_sequence_length=64)
        if kind == "bert":
            return keras_hub.models.BertBackbone(**common)
        if kind == "distilbert":
            return keras_hub.models.DistilBertBackbone(**common)
        if kind == "roberta":
            return keras_hub.models.RobertaBackbone(**common)
        if kind == "gpt2":
            return keras_hub.models.GPT2Backbone(**common)
        return keras_hub.models.AlbertBackbone(embedding_dim=32, num_groups=1, num_inner_repetitions=1, **common)
    return build


BUILDERS = {
    "vit": vit, "siamese": siamese, "autoencoder": autoencoder, "pointnet": pointnet, "wide_deep": wide_deep,
    "seq2seq": seq2seq, "cnn_lstm_video": cnn_lstm_video, "style_transfer_vgg": style_transfer_vgg,
    "wgan_critic": wgan_critic, "char_rnn": char_rnn, "text_vectorization_cnn": text_vectorization_cnn,
    "subclassed_resnet": subclassed_resnet,
    **{f"hub_{kind}": _hub(kind) for kind in ("bert", "distilbert", "roberta", "gpt2", "albert")},
}


def profile_one(name: str, out: Path, batch_size: int) -> dict:
    """Profile one model in a child process (nice, one thread); its figures, or its failure."""
    command = ["nice", "-n", "10", sys.executable, "-m", "tfprofscale", "profile", __file__, "--param",
               f"name={name!r}", "--threads", "1", "--batch-size", str(batch_size), "--steps", "10",
               "--max-time", "1", "--trace-steps", "5", "--quiet", "--json", str(out / f"{name}.json"),
               "--logdir", str(out / "runs")]
    for shape in INPUT_SHAPES.get(name, []):
        command += ["--input-shape", shape]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return {"model": name, "failure": f"exit {done.returncode}: {lines[-1] if lines else ''}"}
    return figures(name, json.loads((out / f"{name}.json").read_text()))


def figures(name: str, report: dict) -> dict:
    """The issue's figures from one report."""
    totals, memory = report["totals"], report.get("memory") or {}
    idle = [row["name"] for row in report["layers"]
            if (row.get("graph_flops") or row.get("analytic_flops") or 0) > 0 and not row.get("time_us")]
    measured = [memory.get(key) for key in ("weights_bytes", "input_bytes", "measured_peak_bytes")]
    return {
        "model": name, "layers": len(report["layers"]), "coverage": totals.get("formula_coverage"),
        "unsupported": totals.get("unsupported_layers", []), "work_no_time": idle,
        "kernel_coverage": totals.get("kernel_coverage"), "estimate_bytes": memory.get("estimated_peak_bytes"),
        "measured_total_bytes": sum(measured) if all(m is not None for m in measured) else None,
        "memory_missing": memory.get("missing"), "dtype_policy": report.get("dtype_policy"),
        "warnings": [w.split(":")[0] for w in report.get("warnings", [])],
    }


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/public_models")
    parser.add_argument("--only", default="")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(BUILDERS)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for name in names:
        result = profile_one(name, out, args.batch_size)
        results.append(result)
        if "failure" in result:
            print(f"{name:24s} FAILED {result['failure']}", flush=True)
            continue
        print(f"{name:24s} layers {result['layers']:3d}  coverage {_percent(result['coverage']):>7s}  "
              f"kernels {_percent(result['kernel_coverage']):>7s}  estimate {_mib(result['estimate_bytes'])} MiB "
              f"vs measured {_mib(result['measured_total_bytes'])} MiB  work-no-time {result['work_no_time']}  "
              f"no-formula {result['unsupported']}  warnings {result['warnings']}"
              + (f"  memory missing: {result['memory_missing'][:100]}" if result["memory_missing"] else ""),
              flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
