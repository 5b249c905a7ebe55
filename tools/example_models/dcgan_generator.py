"""The DCGAN generator (keras.io/examples/generative/dcgan_overriding_train_step), small."""
import keras

L = keras.layers
PARAMS = {"latent_dim": 128, "base": 32}


def build_model(latent_dim=128, base=32):
    inputs = keras.Input((latent_dim,))
    x = L.Dense(8 * 8 * base)(inputs)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Reshape((8, 8, base))(x)
    x = L.Conv2DTranspose(base, 4, strides=2, padding="same")(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Conv2DTranspose(base, 4, strides=2, padding="same")(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    outputs = L.Conv2D(3, 5, padding="same", activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="dcgan_generator")
