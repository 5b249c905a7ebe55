"""The weather forecasting LSTM (keras.io/examples/timeseries/timeseries_weather_forecasting), small."""
import keras

L = keras.layers
PARAMS = {"steps": 120, "features": 7, "units": 32}


def build_model(steps=120, features=7, units=32):
    inputs = keras.Input((steps, features))
    return keras.Model(inputs, L.Dense(1)(L.LSTM(units)(inputs)), name="weather_lstm")
