"""The classifier backend interface and its registry (selected by ``type`` in the config)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge.errors import ConfigError
from edge.model_meta import ModelMetadata


class Classifier(ABC):
    """A face-expression classifier: uint8 face crops in, class probabilities out.

    Subclasses set :attr:`type` (the config key) and register with :func:`register_classifier`.
    """

    #: Config ``type`` key of the backend.
    type: ClassVar[str] = ""

    @property
    @abstractmethod
    def metadata(self) -> ModelMetadata:
        """The model's embedded metadata (labels, contract, provenance)."""

    @property
    @abstractmethod
    def path(self) -> Path:
        """The model file."""

    @property
    @abstractmethod
    def sha256(self) -> str:
        """Hex sha256 of the model file as loaded."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Label names in output order."""
        return self.metadata.labels

    @property
    def input_size(self) -> int:
        """Side of the square face crop the model takes."""
        return self.metadata.input_size

    @abstractmethod
    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Classify faces.

        Args:
            faces: uint8 crops of shape ``(N, S, S)`` or ``(N, S, S, 1)`` (or one ``(S, S)``),
                made with :func:`edge.contract.crop_face`.

        Returns:
            float32 probabilities of shape ``(N, len(labels))``.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to free
        """Release runtime resources (optional)."""


_CLASSIFIERS: dict[str, type[Classifier]] = {}


def register_classifier(cls: type[Classifier]) -> type[Classifier]:
    """Class decorator registering a backend under its :attr:`Classifier.type`."""
    if not cls.type or cls.type in _CLASSIFIERS:
        raise RuntimeError(f"classifier type {cls.type!r} is empty or registered twice")
    _CLASSIFIERS[cls.type] = cls
    return cls


def classifier_types() -> list[str]:
    """Registered classifier ``type`` keys."""
    return sorted(_CLASSIFIERS)


def create_classifier(type_: str, path: str | Path, **options: Any) -> Classifier:
    """Build the classifier backend named ``type_`` for the model at ``path``.

    Raises:
        ConfigError: for an unknown type, naming the valid ones.
        ModelError: if the model cannot be loaded.
    """
    try:
        factory: Callable[..., Classifier] = _CLASSIFIERS[type_]
    except KeyError:
        raise ConfigError(
            f"unknown classifier type {type_!r}; valid: {', '.join(classifier_types())}"
        ) from None
    return factory(path, **options)
