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
    "cnn_distilled": "models/cnn_distilled.tflite",
}
#: The models ``fer-edge run`` averages when a config names none (no ``[model] path``,
#: ``bundled`` or ``ensemble``): ``cnn`` and ``cnn_distilled``, a student distilled on TrainVal
#: from ``cnn_trainval`` and another student, which passes the converter's parity gate. Chosen
#: before it was run end to end (the rule was: keep it if it holds issue 20's hard-scene target
#: of ``fer`` + 10 points on every scene): with flips it reads 68.04 % of PublicTest vs 67.32 %
#: for ``cnn`` alone, ECE 0.015 vs 0.064, the same share of CK+48's faces (73.4 vs 73.6 %), and
#: 90 vs 97 of 140 faces on the hard scenes (fer + 10.7 points on the hardest). The pair
#: ``cnn`` + ``cnn_trainval`` reads more of PublicTest but falls to ``fer``'s level on a hard
#: scene (docs/RESULTS.md, "The default, and the pair").
DEFAULT_MODELS: tuple[str, ...] = ("cnn", "cnn_distilled")
DEFAULT_SAMPLE_RESOURCE = "samples/astronaut.avi"


def package_file(relative: str) -> Path:
    """Filesystem path of a file bundled inside the ``edge`` package."""
    return Path(str(resources.files("edge").joinpath(relative)))


def default_model_path(name: str = "cnn") -> Path:
    """A bundled model by name: ``cnn`` (``edge/models/default.tflite``),
    ``cnn_lstm``, ``cnn_ferplus``, ``cnn_trainval`` or ``cnn_distilled``.

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
