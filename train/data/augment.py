"""Training-only augmentation, as in the seeds: horizontal flip, rotation, shift/zoom,
brightness/contrast (seed 002 section 3.2.3, seed 003 section 3.1, seed 004).

Augmentation runs in the ``tf.data`` input pipeline, never inside the model, so the exported
model (and the device) sees exactly the contract's plain crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (0 disables a transform)."""

    flip: bool = True
    rotation_deg: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    #: Probability of random erasing (a random rectangle, 2-33% of the face, filled with
    #: noise): forces the model to use more than one facial region. 0 disables it.
    erasing: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


NONE = AugmentConfig(False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def build_augmenter(cfg: AugmentConfig, seed: int) -> Any:
    """A Keras ``Sequential`` of random preprocessing layers for raw 0..255 float images."""
    import keras

    layers: list[Any] = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.rotation_deg:
        layers.append(
            keras.layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="nearest", seed=seed)
        )
    if cfg.shift:
        layers.append(
            keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="nearest", seed=seed)
        )
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=seed))
    if cfg.brightness:
        layers.append(
            keras.layers.RandomBrightness(cfg.brightness, value_range=(0.0, 255.0), seed=seed)
        )
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, seed=seed))
    if cfg.erasing:
        layers.append(
            keras.layers.RandomErasing(factor=cfg.erasing, value_range=(0.0, 255.0), seed=seed)
        )
    return keras.Sequential(layers, name="augment")
