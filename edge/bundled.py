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
#: The models ``fer-edge run`` averages when a config names none (no ``[model] path``,
#: ``bundled`` or ``ensemble``): the most accurate setting measured within the 1.0 ms/face
#: budget (with ``tta = "flip"``: 68.43 % of PublicTest, ECE 0.017 with no temperature, four
#: 0.24 ms invokes per face; docs/RESULTS.md, "The classifier as deployed"). Two models trained
#: and selected differently (``cnn`` on all of Training, ``cnn_trainval`` without its TrainVal
#: slice) disagree on enough faces that their average beats either one by 1.1-2.8 points.
DEFAULT_ENSEMBLE: tuple[str, ...] = ("cnn", "cnn_trainval")
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
