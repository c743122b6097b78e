"""Face-expression classifiers: a small backend interface and the TFLite implementation.

The backend is chosen by ``type`` in the config (``tflite`` is the only one so far); the model is
chosen by path. Importing this package imports no TensorFlow.
"""

from edge.classify.base import (
    Classifier,
    classifier_types,
    create_classifier,
    register_classifier,
)
from edge.classify.interpreter import RUNTIMES, TFLiteClassifier, load_interpreter_class

__all__ = [
    "RUNTIMES",
    "Classifier",
    "TFLiteClassifier",
    "classifier_types",
    "create_classifier",
    "load_interpreter_class",
    "register_classifier",
]
