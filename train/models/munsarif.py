"""Seed 003: Munsarif & Ku-Mahamud (2025), "Deep residual bidirectional long short-term memory
fusion: achieving superior accuracy in facial emotion recognition"
(``../shared/seeds/003_f2c5d173e0dbf00e.txt``, section 3.2, Figure 1, equations 1-10).

Deep spatial network (DSN): a conv/BN/ReLU stem and residual blocks of two 3x3 conv/BN/ReLU
layers with skip connections. Deep temporal network (DTN): the rows of the final feature map
form the sequence, read by a Bi-LSTM whose concatenated states H_t (eq. 7) go through additive
attention e_t = v^T tanh(W_h H_t + b_h), alpha = softmax(e), z = sum alpha_t H_t (eqs. 8-10);
then fully connected layers with dropout 0.5 and softmax. L2 regularization on the weights
(section 3.3). The paper gives no filter widths or parameter count; widths 32/64/128 and 64 LSTM
units per direction are our choice for 48x48 input.

The attention is built from stock layers (Dense, Softmax, Dot) rather than a custom layer so
the same function builds in Keras 3 and tf_keras and converts to TFLite builtins.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from train.models.registry import conv_bn_relu, normalization, register_model

SEED = "003_f2c5d173e0dbf00e.txt"
L2 = 1e-4


def _residual_block(k: ModuleType, x: Any, filters: int, i: int) -> Any:
    reg = k.regularizers.l2(L2)
    shortcut = x
    if x.shape[-1] != filters:
        # 1x1 projection so the skip connection matches the new width.
        shortcut = k.layers.Conv2D(filters, 1, kernel_regularizer=reg, name=f"res{i}_proj")(x)
        shortcut = k.layers.BatchNormalization(name=f"res{i}_proj_bn")(shortcut)
    y = k.layers.Conv2D(filters, 3, padding="same", kernel_regularizer=reg, name=f"res{i}_conv0")(x)
    y = k.layers.BatchNormalization(name=f"res{i}_bn0")(y)
    y = k.layers.Activation("relu", name=f"res{i}_relu0")(y)
    y = k.layers.Conv2D(filters, 3, padding="same", kernel_regularizer=reg, name=f"res{i}_conv1")(y)
    y = k.layers.BatchNormalization(name=f"res{i}_bn1")(y)
    y = k.layers.Add(name=f"res{i}_add")([shortcut, y])
    return k.layers.Activation("relu", name=f"res{i}_out")(y)


@register_model(seed=SEED, source="Section 3.2, Figure 1, eqs. 1-10", kind="cnn_lstm")
def munsarif_res_bilstm(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """Residual CNN -> Bi-LSTM over feature-map rows -> additive attention -> dense (seed 003)."""
    reg = k.regularizers.l2(L2)
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    x = conv_bn_relu(k, x, 32, "stem", kernel_regularizer=reg)
    for i, filters in enumerate((32, 64, 128)):
        x = _residual_block(k, x, filters, i)
        x = k.layers.MaxPooling2D(2, name=f"pool{i}")(x)  # 24, 12, 6
    h, w, c = (int(d) for d in x.shape[1:])
    seq = k.layers.Reshape((h, w * c), name="rows_to_seq")(x)
    hs = k.layers.Bidirectional(
        k.layers.LSTM(64, return_sequences=True, kernel_regularizer=reg), name="bilstm"
    )(seq)  # H_t = [h_fwd; h_bwd], eq. 7
    e = k.layers.Dense(64, activation="tanh", name="att_w")(hs)  # tanh(W_h H_t + b_h)
    e = k.layers.Dense(1, use_bias=False, name="att_v")(e)  # e_t = v^T ..., eq. 8
    e = k.layers.Flatten(name="att_flat")(e)
    alpha = k.layers.Softmax(name="att_alpha")(e)  # eq. 9
    z = k.layers.Dot(axes=(1, 1), name="att_sum")([alpha, hs])  # eq. 10
    x = k.layers.Dense(128, activation="relu", kernel_regularizer=reg, name="fc")(z)
    x = k.layers.Dropout(0.5, name="drop")(x)
    out = k.layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, name="probs")(x)
    return k.Model(inp, out, name="munsarif_res_bilstm")
