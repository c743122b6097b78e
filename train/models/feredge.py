"""fer-edge's own architecture, designed for int8 on a Raspberry Pi (issue 5, not a seed paper).

Budget: at most 1M parameters and about 0.3 ms per 48x48 face on one core with int8. Design:
a plain 3x3 stem at full resolution (cheap: one input channel), then depthwise-separable
residual stages that halve the resolution and widen the channels (mini-Xception style, which is
the strongest small FER2013 model family), global average pooling, dropout and a linear
classifier. Every op (Conv2D, DepthwiseConv2D, Add, MaxPool, Mean, FullyConnected, Softmax)
has an int8 TFLite builtin kernel, and BatchNorm folds into the convolutions at conversion.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from train.models.registry import conv_bn_relu, normalization, register_model

SEED = "fer-edge (ours; issue 5)"
L2 = 1e-4
#: Stage widths: ~57M MACs and ~0.75M parameters at 48x48.
WIDTHS = (128, 256, 384)


def _sep_bn(k: ModuleType, x: Any, filters: int, name: str, relu: bool = True) -> Any:
    x = k.layers.SeparableConv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        depthwise_regularizer=k.regularizers.l2(L2),
        pointwise_regularizer=k.regularizers.l2(L2),
        name=f"{name}_sep",
    )(x)
    x = k.layers.BatchNormalization(name=f"{name}_bn")(x)
    return k.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _stage(k: ModuleType, x: Any, filters: int, i: int) -> Any:
    """Residual separable stage: two separable convs + max-pool, 1x1 strided projection skip."""
    skip = k.layers.Conv2D(
        filters, 1, strides=2, padding="same", use_bias=False, name=f"s{i}_proj"
    )(x)
    skip = k.layers.BatchNormalization(name=f"s{i}_proj_bn")(skip)
    y = _sep_bn(k, x, filters, f"s{i}a")
    y = _sep_bn(k, y, filters, f"s{i}b", relu=False)
    y = k.layers.MaxPooling2D(3, strides=2, padding="same", name=f"s{i}_pool")(y)
    y = k.layers.Add(name=f"s{i}_add")([skip, y])
    return k.layers.Activation("relu", name=f"s{i}_out")(y)


@register_model(seed=SEED, source="train/models/feredge.py (design notes in docstring)", kind="cnn")
def feredge_sepnet(k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """Depthwise-separable residual CNN for int8 edge inference (~0.75M params)."""
    reg = k.regularizers.l2(L2)
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    x = conv_bn_relu(k, x, 32, "stem0", use_bias=False, kernel_regularizer=reg)
    x = _sep_bn(k, x, 64, "stem1")  # 48x48x64
    # Pool before the stages: separable convs at 48x48 would cost most of the latency budget.
    x = k.layers.MaxPooling2D(2, name="stem_pool")(x)  # 24x24x64
    for i, filters in enumerate(WIDTHS):
        x = _stage(k, x, filters, i)  # 12, 6, 3
    x = _sep_bn(k, x, WIDTHS[-1], "head")  # 3x3 (mixes the last map before pooling)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    x = k.layers.Dropout(0.4, name="drop")(x)
    out = k.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return k.Model(inp, out, name="feredge_sepnet")
