"""Load a trained Keras 3 model, check it, and rebuild it in ``tf_keras`` with batch size 1.

Why a rebuild: on TF 2.21 / Keras 3.15 a Keras 3 LSTM converts either to Flex TensorList ops
(which no edge runtime has) or, with a fixed batch, crashes the int8 calibrator. The same
registry builder run with the ``tf_keras`` module converts every architecture to TFLite builtins
(LSTMs become fused ``UNIDIRECTIONAL_SEQUENCE_LSTM``). The weights are copied by position and the
rebuilt model is checked against the original on real faces, so the converted model is the
trained model, not a look-alike. Every architecture goes through the same path, CNNs included,
so there is one conversion code path to test.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import DEFAULT_CONTRACT, to_model_input
from edge.errors import ModelError

log = logging.getLogger(__name__)

#: Largest allowed absolute difference between original and rebuilt probabilities.
REBUILD_TOLERANCE = 1e-4


def load_keras(path: str | Path) -> Any:
    """Load a ``.keras`` model for inference.

    Raises:
        ModelError: if the file is missing or not a loadable Keras model.
    """
    p = Path(path)
    if p.suffix.lower() not in (".keras", ".h5"):
        raise ModelError(
            f"{p}: expected a .keras (or .h5) model file, got {p.suffix or 'no suffix'!r}"
        )
    from train.predict import load_keras_model

    return load_keras_model(p)


def check_classifier(model: Any, path: str | Path) -> tuple[str, int]:
    """Check that ``model`` is a registry classifier of contract-sized faces.

    Returns:
        ``(architecture name, number of classes)``.

    Raises:
        ModelError: if the input is not ``(None, S, S, 1)`` with the contract size, the output is
            not ``(None, C)`` with ``C >= 2``, or the model name is not a registry architecture.
    """
    from train.models import get_spec

    n_out = _check_io(model, path)
    _check_float32(model, path)
    arch = str(model.name)
    try:
        get_spec(arch)
    except KeyError as e:
        raise ModelError(
            f"{path}: model name {arch!r} is not a known architecture: {e.args[0]}"
        ) from None
    return arch, n_out


def _check_io(model: Any, path: str | Path) -> int:
    """One input of contract-sized gray faces, one output of ``C >= 2`` classes; returns C."""
    s = DEFAULT_CONTRACT.size
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path}: has {len(inputs)} inputs and {len(outputs)} outputs; a face classifier "
            "has one of each"
        )
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4 or tuple(in_shape[1:]) != (s, s, 1):
        raise ModelError(
            f"{path}: input shape {in_shape} is not a classifier of {s}x{s} grayscale faces "
            f"(expected (None, {s}, {s}, 1))"
        )
    out_shape = tuple(outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or int(out_shape[1]) < 2:
        raise ModelError(f"{path}: output shape {out_shape} is not (None, classes>=2)")
    return int(out_shape[1])


def _check_float32(model: Any, path: str | Path) -> None:
    """Refuse a mixed-precision model."""
    policies = {layer.dtype_policy.name for layer in model.layers if hasattr(layer, "dtype_policy")}
    mixed = sorted(policies - {"float32"})
    if mixed:
        # Its 16-bit compute would fail the float32 rebuild check with a misleading message.
        raise ModelError(
            f"{path}: computes in {', '.join(mixed)} (a mixed-precision checkpoint); convert the "
            "run's model.keras, which fer-train exports in float32 when training ends"
        )


def rebuild_tf_keras(model: Any, arch: str, num_classes: int, check_faces: np.ndarray) -> Any:
    """Rebuild ``model`` with ``tf_keras``, copy its weights by position, fix the batch to 1.

    Args:
        model: The trained Keras 3 model (a registry architecture).
        arch: Its registry name.
        num_classes: Its output classes.
        check_faces: uint8 faces ``(N, S, S)`` (real images) to compare both models on.

    Returns:
        A ``tf_keras`` model with input ``(1, S, S, 1)`` computing the same function.

    Raises:
        ModelError: if the weight lists differ in count or shape, or the outputs differ by more
            than :data:`REBUILD_TOLERANCE`.
    """
    import tf_keras

    from train.models import create_model

    twin = create_model(arch, num_classes, DEFAULT_CONTRACT.input_shape, backend="tf_keras")
    twin.set_weights(_matching_weights(model.get_weights(), twin.get_weights(), arch))
    _check_same_function(model, twin, arch, check_faces)
    s = DEFAULT_CONTRACT.size
    # A fixed batch of 1 lets the converter fuse LSTMs (no TensorList loop) and matches how the
    # device classifies: one face per invoke.
    inp = tf_keras.Input(shape=(s, s, 1), batch_size=1, name="image")
    return tf_keras.Model(inp, twin(inp, training=False), name=arch)


def _matching_weights(src: list[Any], dst: list[Any], arch: str) -> list[Any]:
    """The trained weights ``src``, after checking they fit the rebuilt model's ``dst`` one by
    one (count and shapes)."""
    if len(src) != len(dst):
        raise ModelError(
            f"{arch}: the trained model has {len(src)} weight arrays but the registry builds "
            f"{len(dst)}; was it built with a different version of the architecture?"
        )
    for i, (a, b) in enumerate(zip(src, dst, strict=True)):
        if a.shape != b.shape:
            raise ModelError(
                f"{arch}: weight #{i} has shape {a.shape} in the trained model but {b.shape} "
                "in the registry architecture"
            )
    return src


def _check_same_function(model: Any, twin: Any, arch: str, check_faces: np.ndarray) -> None:
    """Both models give the same probabilities on real faces (within the tolerance)."""
    x = to_model_input(check_faces)
    want = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    got = np.asarray(twin.predict_on_batch(x), dtype=np.float64)
    diff = float(np.abs(want - got).max())
    log.info("%s: tf_keras rebuild max |diff| = %.2e on %d faces", arch, diff, len(x))
    if not diff <= REBUILD_TOLERANCE:
        raise ModelError(
            f"{arch}: tf_keras rebuild differs from the trained model by {diff:.3g} "
            f"(> {REBUILD_TOLERANCE}); the positional weight copy does not match"
        )
