"""Seed 001: Savitri, Permana & Puspa Dewi (2026), "Comparison of CNN and CNN-LSTM Performance in
Facial Expression Classification Based on FER2013 Dataset" (``../shared/seeds/001_266ff09d4b9ca909.txt``,
abstract also in ``000_ee4871d4e70b2791.txt``).

The seed gives the design in prose only: a CNN of "four hierarchical convolution layers for
spatial feature extraction" and a CNN-LSTM that "uses a TimeDistributed approach to process image
pixel rows as sequential data". The reconstruction below is the conventional reading of that
text: filters doubling 32 -> 256 with BN/ReLU/max-pool/dropout per stage and a dense head for the
CNN; for the CNN-LSTM, every one of the 48 pixel rows is a time step, a small 1-D CNN is applied
to each row through ``TimeDistributed``, and an LSTM reads the row sequence. No parameter count
is given by the paper, so none is asserted.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from train.models.registry import dense_head, normalization, register_model

SEED = "001_266ff09d4b9ca909.txt"


@register_model(seed=SEED, source="Abstract/method: four hierarchical conv layers", kind="cnn")
def savitri_cnn(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """Pure CNN of seed 001: four conv stages (32, 64, 128, 256) then dense 256 + softmax."""
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    for i, filters in enumerate((32, 64, 128, 256)):
        x = k.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = k.layers.BatchNormalization(name=f"bn{i}")(x)
        x = k.layers.Activation("relu", name=f"relu{i}")(x)
        x = k.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = k.layers.Dropout(0.25, name=f"drop{i}")(x)
    x = k.layers.Flatten(name="flatten")(x)  # 3x3x256
    out = dense_head(k, x, num_classes, 256, 0.5, drop_name="drop_fc")
    return k.Model(inp, out, name="savitri_cnn")


@register_model(
    seed=SEED, source="Abstract/method: TimeDistributed over pixel rows", kind="cnn_lstm"
)
def savitri_cnn_lstm(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """CNN-LSTM of seed 001: each pixel row is a time step; TimeDistributed 1-D CNN -> LSTM."""
    h, w, _ = input_shape
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    x = k.layers.Reshape((h, w, 1), name="rows")(x)  # (time=rows, row pixels, 1)
    x = k.layers.TimeDistributed(
        k.layers.Conv1D(32, 3, padding="same", activation="relu"), name="row_conv0"
    )(x)
    x = k.layers.TimeDistributed(k.layers.MaxPooling1D(2), name="row_pool0")(x)
    x = k.layers.TimeDistributed(
        k.layers.Conv1D(64, 3, padding="same", activation="relu"), name="row_conv1"
    )(x)
    x = k.layers.TimeDistributed(k.layers.MaxPooling1D(2), name="row_pool1")(x)
    x = k.layers.TimeDistributed(k.layers.Flatten(), name="row_flat")(x)  # (h, w/4*64)
    x = k.layers.LSTM(128, name="lstm0")(x)
    x = k.layers.Dropout(0.5, name="drop")(x)
    x = k.layers.Dense(64, activation="relu", name="fc")(x)
    out = k.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return k.Model(inp, out, name="savitri_cnn_lstm")
