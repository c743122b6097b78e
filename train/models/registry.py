"""Model registry in the style of timm's ``@register_model``.

Each seed paper has one module in this package; every architecture in it is a builder function
decorated with :func:`register_model`. A builder takes the Keras *module* it should build with
(Keras 3 ``keras`` for training, ``tf_keras`` for int8 conversion of LSTMs, see ``convert/``) so
one function describes the architecture for both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from edge.contract import DEFAULT_CONTRACT

Kind = Literal["cnn", "cnn_lstm"]
Builder = Callable[[ModuleType, int, tuple[int, int, int]], Any]


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    Attributes:
        name: Registry name (also the Keras model name, so a saved model names its architecture).
        builder: ``builder(keras_module, num_classes, input_shape) -> Model``.
        seed: Seed file the architecture comes from, e.g. ``002_8ee55e6a24b679ae.txt``.
        source: Where in the seed it is described (table / section).
        kind: ``cnn`` or ``cnn_lstm``.
        paper_params: Parameter count the paper states for 48x48x1 input and 7 classes, if any.
    """

    name: str
    builder: Builder
    seed: str
    source: str
    kind: Kind
    paper_params: int | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    *, seed: str, source: str, kind: Kind, paper_params: int | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under its function name."""

    def deco(fn: Builder) -> Builder:
        name = fn.__name__
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, fn, seed, source, kind, paper_params)
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the paper modules runs their decorators.
    from train.models import bagga, feredge, mahastama, munsarif, savitri  # noqa: F401


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``name``.

    Raises:
        KeyError: naming the valid architectures.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown architecture {name!r}; valid names: {', '.join(sorted(_REGISTRY))}"
        ) from None


def keras_module(backend: str = "keras") -> ModuleType:
    """Import the Keras flavour to build with: ``keras`` (Keras 3) or ``tf_keras`` (legacy)."""
    if backend not in ("keras", "tf_keras"):
        raise ValueError(f"unknown keras backend {backend!r}; valid: keras, tf_keras")
    return importlib.import_module(backend)


def create_model(
    name: str,
    num_classes: int = 7,
    input_shape: tuple[int, int, int] = DEFAULT_CONTRACT.input_shape,
    backend: str = "keras",
) -> Any:
    """Build a fresh, uncompiled model of a registered architecture.

    Args:
        name: Registry name (see :func:`list_models`).
        num_classes: Output classes (7 for FER2013, 8 for FERPlus with contempt, 4 for seed 004).
        input_shape: ``(H, W, 1)`` raw-pixel input; normalization is the model's first layer.
        backend: ``keras`` or ``tf_keras``.

    Raises:
        KeyError: for an unknown name, listing the valid ones.
    """
    spec = get_spec(name)
    k = keras_module(backend)
    h, w, c = (int(d) for d in input_shape)
    return spec.builder(k, num_classes, (h, w, c))


def normalization(k: ModuleType, x: Any) -> Any:
    """The in-model normalization layer of the preprocessing contract."""
    return k.layers.Rescaling(
        DEFAULT_CONTRACT.norm_scale, DEFAULT_CONTRACT.norm_offset, name="normalize"
    )(x)


def dense_head(
    k: ModuleType, x: Any, num_classes: int, units: int, rate: float, drop_name: str = "drop"
) -> Any:
    """The classifier on top of the features: ``fc`` (ReLU), dropout, softmax ``probs``."""
    x = k.layers.Dense(units, activation="relu", name="fc")(x)
    x = k.layers.Dropout(rate, name=drop_name)(x)
    return k.layers.Dense(num_classes, activation="softmax", name="probs")(x)


def conv_bn_relu(k: ModuleType, x: Any, filters: int, name: str, **conv: Any) -> Any:
    """3x3 ``same`` convolution ``name`` (``conv``: more Conv2D options), ``<name>_bn``,
    ``<name>_relu``."""
    x = k.layers.Conv2D(filters, 3, padding="same", name=name, **conv)(x)
    x = k.layers.BatchNormalization(name=f"{name}_bn")(x)
    return k.layers.Activation("relu", name=f"{name}_relu")(x)
