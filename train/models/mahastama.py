"""Seed 004: Mahastama et al., "Facial Expression Classification System Using Stacked CNN"
(``../shared/seeds/004_e51200d63e9e7d4a.txt``, section C "Model Architecture", Fig. 7,
scenario 9 of Table III).

Five convolution blocks of 3x3 filters (256, 512, 384, 192, 512), each followed by batch
normalization, 2x2 max-pooling and dropout 0.5, plus the added block with 1024 filters that gave
the paper's best result (scenario 9); then Flatten -> Dense 256 ReLU -> dropout 0.5 -> softmax.
The paper trains 4 classes (angry, happy, neutral, sad); ``num_classes`` selects 4 or 7.
Pooling uses ``padding="same"`` so the sixth block still pools a 1x1 map (48 -> 24 -> 12 -> 6 ->
3 -> 2 -> 1) instead of collapsing to zero, which the paper leaves unspecified.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from train.models.registry import dense_head, normalization, register_model

SEED = "004_e51200d63e9e7d4a.txt"
FILTERS = (256, 512, 384, 192, 512, 1024)


@register_model(seed=SEED, source="Section C, Fig. 7, scenario 9 (added 1024 block)", kind="cnn")
def mahastama_stacked_cnn(
    k: ModuleType, num_classes: int, input_shape: tuple[int, int, int]
) -> Any:
    """Stacked CNN of seed 004 with the added 1024-filter block."""
    inp = k.Input(shape=input_shape, name="image")
    x = normalization(k, inp)
    for i, filters in enumerate(FILTERS):
        x = k.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = k.layers.BatchNormalization(name=f"bn{i}")(x)
        x = k.layers.Activation("relu", name=f"relu{i}")(x)
        x = k.layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
        x = k.layers.Dropout(0.5, name=f"drop{i}")(x)
    x = k.layers.Flatten(name="flatten")(x)
    out = dense_head(k, x, num_classes, 256, 0.5, drop_name="drop_fc")
    return k.Model(inp, out, name="mahastama_stacked_cnn")
