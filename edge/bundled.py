"""Files shipped inside the ``edge`` package: the bundled models and the sample video."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edge.errors import ConfigError

#: Bundled model and sample, relative to the ``edge`` package.
DEFAULT_MODEL_RESOURCE = "models/default.tflite"
#: Models shipped inside the package, selectable by name with ``[model] bundled``.
BUNDLED_MODELS: dict[str, str] = {
    "cnn": DEFAULT_MODEL_RESOURCE,
    "cnn_lstm": "models/cnn_lstm.tflite",
    "cnn_ferplus": "models/cnn_ferplus.tflite",
    "cnn_trainval": "models/cnn_trainval.tflite",
}
DEFAULT_SAMPLE_RESOURCE = "samples/astronaut.avi"


def package_file(relative: str) -> Path:
    """Filesystem path of a file bundled inside the ``edge`` package."""
    return Path(str(resources.files("edge").joinpath(relative)))


def default_model_path(name: str = "cnn") -> Path:
    """A bundled model by name: ``cnn`` (the default ``edge/models/default.tflite``),
    ``cnn_lstm``, ``cnn_ferplus`` or ``cnn_trainval``.

    Raises:
        ConfigError: naming the valid bundled models.
    """
    try:
        return package_file(BUNDLED_MODELS[name])
    except KeyError:
        raise ConfigError(
            f"unknown bundled model {name!r}; valid: {', '.join(BUNDLED_MODELS)}"
        ) from None


def default_sample_path() -> Path:
    """The bundled sample video ``edge/samples/astronaut.avi``."""
    return package_file(DEFAULT_SAMPLE_RESOURCE)
