"""ConvMixer (keras.io/examples/vision/convmixer), small: patch embedding, depthwise conv (groups=channels)
as a grouped Conv2D, pointwise conv, residual Add; GAP and Dense."""
import keras

L = keras.layers
PARAMS = {"image_size": 32, "filters": 64, "depth": 2, "kernel_size": 5, "patch_size": 2}


def build_model(image_size=32, filters=64, depth=2, kernel_size=5, patch_size=2):
    inputs = keras.Input((image_size, image_size, 3))
    x = L.Rescaling(1 / 255)(inputs)
    x = L.Conv2D(filters, patch_size, strides=patch_size)(x)
    x = L.BatchNormalization()(L.Activation("gelu")(x))
    for _ in range(depth):
        y = L.Conv2D(filters, kernel_size, padding="same", groups=filters)(x)  # depthwise as grouped conv
        y = L.BatchNormalization()(L.Activation("gelu")(y))
        x = L.Add()([y, x])
        x = L.Conv2D(filters, 1)(x)
        x = L.BatchNormalization()(L.Activation("gelu")(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="convmixer")
