"""MLP-Mixer (keras.io/examples/vision/mlp_image_classification), small: Patches, MLPMixerLayer blocks
(token-mixing and channel-mixing Sequential MLPs, LayerNorm) nested in the model."""
import keras

L = keras.layers
PARAMS = {"image_size": 32, "patch_size": 4, "hidden": 32, "blocks": 2}


class Patches(L.Layer):
    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, x):
        patches = keras.ops.image.extract_patches(x, self.patch_size)
        batch, h, w, c = keras.ops.shape(patches)
        return keras.ops.reshape(patches, (batch, h * w, c))


class MLPMixerLayer(L.Layer):
    def __init__(self, num_patches, hidden_units, dropout_rate=0.2, **kwargs):
        super().__init__(**kwargs)
        self.mlp1 = keras.Sequential([L.Dense(num_patches, activation="gelu"), L.Dense(num_patches),
                                      L.Dropout(dropout_rate)])
        self.mlp2 = keras.Sequential([L.Dense(num_patches, activation="gelu"), L.Dense(hidden_units),
                                      L.Dropout(dropout_rate)])
        self.normalize = L.LayerNormalization(epsilon=1e-6)

    def call(self, inputs):
        x = self.normalize(inputs)
        x_channels = keras.ops.transpose(x, axes=(0, 2, 1))
        mlp1_outputs = keras.ops.transpose(self.mlp1(x_channels), axes=(0, 2, 1))
        x = mlp1_outputs + inputs
        return x + self.mlp2(self.normalize(x))


def build_model(image_size=32, patch_size=4, hidden=32, blocks=2):
    num_patches = (image_size // patch_size) ** 2
    inputs = keras.Input((image_size, image_size, 3))
    x = Patches(patch_size)(inputs)
    x = L.Dense(hidden)(x)
    for _ in range(blocks):
        x = MLPMixerLayer(num_patches, hidden)(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, L.Dense(10)(x), name="mlp_mixer")
