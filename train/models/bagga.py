"""Seed 002: Bagga & Makwana (2026), "Facial Expression Recognition System Using a Hybrid CNN
and LSTM Model" (``../shared/seeds/002_8ee55e6a24b679ae.txt``).

The three builders reproduce Tables 2, 3 and 4 layer by layer; the parameter counts match the
tables exactly (117,031 / 303,495 / 457,863). Where the prose and the tables disagree (the prose
says the CNN's dense layer has 200 units, Table 2 has 32), the table wins because its parameter
count is self-consistent. Dropout is 0.6 as the text states for every model. The only addition
is the contract's normalization layer (no parameters) in front.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from train.models.registry import dense_head, normalization, register_model

SEED = "002_8ee55e6a24b679ae.txt"


def _conv_bn_relu(k: ModuleType, x: Any, filters: int, padding: str, i: int) -> Any:
    x = k.layers.Conv2D(filters, 3, padding=padding, name=f"conv{i}")(x)
    x = k.layers.BatchNormalization(axis=3, name=f"bn{i}")(x)
    return k.layers.Activation("relu", name=f"relu{i}")(x)


def _trunk_5conv(k: ModuleType, x: Any) -> Any:
    """The five-convolution trunk shared by Tables 3 and 4 (output 4x4x128)."""
    x = _conv_bn_relu(k, x, 32, "valid", 0)  # 46x46x32
    x = _conv_bn_relu(k, x, 64, "same", 1)  # 46x46x64
    x = k.layers.MaxPooling2D(2, name="pool0")(x)  # 23
    x = _conv_bn_relu(k, x, 64, "valid", 2)  # 21
    x = _conv_bn_relu(k, x, 128, "same", 3)  # 21x21x128
    x = k.layers.MaxPooling2D(2, name="pool1")(x)  # 10
    x = _conv_bn_relu(k, x, 128, "valid", 4)  # 8
    return k.layers.MaxPooling2D(2, name="pool2")(x)  # 4x4x128


def _head(k: ModuleType, x: Any, num_classes: int) -> Any:
    return dense_head(k, x, num_classes, 200, 0.6)


def _cnn_lstm(
    k: ModuleType,
    num_classes: int,
    input_shape: tuple[int, int, int],
    lstms: tuple[tuple[tuple[int, int], int], tuple[tuple[int, int], int]],
    name: str,
) -> Any:
    """Tables 3 and 4: the 5-conv trunk read by two LSTMs, each after a reshape to a sequence.

    ``lstms``: ``((sequence shape, units), (sequence shape, units))``.
    """
    inp = k.Input(shape=input_shape, name="image")
    x = _trunk_5conv(k, normalization(k, inp))
    for i, (seq, units) in enumerate(lstms):
        x = k.layers.Reshape(seq, name=f"to_seq{i}")(x)
        x = k.layers.LSTM(units, name=f"lstm{i}")(x)
    return k.Model(inp, _head(k, x, num_classes), name=name)


@register_model(seed=SEED, source="Table 2 (CNN Model1)", kind="cnn", paper_params=117_031)
def bagga_cnn1(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """CNN Model1, seed 002 Table 2: conv16(valid)-conv32(same)-pool-conv32(valid)-pool-fc32."""
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    x = _conv_bn_relu(k, x, 16, "valid", 0)  # 46x46x16
    x = _conv_bn_relu(k, x, 32, "same", 1)  # 46x46x32
    x = k.layers.MaxPooling2D(2, name="pool0")(x)  # 23
    x = _conv_bn_relu(k, x, 32, "valid", 2)  # 21
    x = k.layers.MaxPooling2D(2, name="pool1")(x)  # 10x10x32
    x = k.layers.Flatten(name="flatten")(x)  # 3200
    return k.Model(inp, dense_head(k, x, num_classes, 32, 0.6), name="bagga_cnn1")


@register_model(
    seed=SEED, source="Table 3 (CNN+LSTM Model2)", kind="cnn_lstm", paper_params=303_495
)
def bagga_cnn_lstm2(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """CNN+LSTM Model2, seed 002 Table 3: 5-conv trunk -> (64,32) -> LSTM32 -> (1,32) -> LSTM32."""
    lstms = (((64, 32), 32), ((1, 32), 32))
    return _cnn_lstm(k, num_classes, input_shape, lstms, "bagga_cnn_lstm2")


@register_model(
    seed=SEED, source="Table 4 (CNN+LSTM Model3)", kind="cnn_lstm", paper_params=457_863
)
def bagga_cnn_lstm3(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """CNN+LSTM Model3, seed 002 Table 4: 5-conv trunk -> (16,128) -> LSTM128 -> (2,64) -> LSTM64.

    Table 4 prints part of the trunk twice (a typesetting slip); the shapes and the total of
    457,863 fix the architecture: the second LSTM's 33,024 parameters mean a 64-wide input, hence
    the (2, 64) reshape of the first LSTM's 128 outputs.
    """
    lstms = (((16, 128), 128), ((2, 64), 64))
    return _cnn_lstm(k, num_classes, input_shape, lstms, "bagga_cnn_lstm3")


@register_model(
    seed=SEED,
    source="ablation of Table 4: Model3 with its two LSTMs replaced by Flatten",
    kind="cnn",
)
def bagga_cnn3_nolstm(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """Model3 without the LSTMs: the same 5-conv trunk and fc200 head, joined by a Flatten.

    Not in the paper. Seed 002 credits the LSTM layers for Model3's lead over Model1, but Model1
    also has a smaller trunk; this control keeps everything but the LSTMs. At the paper's Adam
    1e-3 its fc layer dies in the first epoch (``bench/dead_units.py``), so it is trained at
    1e-4, and the like-for-like comparison is Model3 trained at 1e-4 too (docs/RESULTS.md).
    """
    inp = k.Input(shape=input_shape, name="image")
    x = _trunk_5conv(k, normalization(k, inp))
    x = k.layers.Flatten(name="flatten")(x)  # 2048, the same 16x128 values the LSTM reads
    return k.Model(inp, _head(k, x, num_classes), name="bagga_cnn3_nolstm")
