"""TFLite conversion in the four supported modes, restricted to builtin ops.

``int8`` (the default and the device format): full-integer quantization with
``TFLITE_BUILTINS_INT8`` only and int8 input/output, calibrated on a representative set of
Training faces fed exactly as the device feeds them (raw 0..255, normalization in-model, so the
input quantization is scale 1, zero point -128 and maps every pixel exactly).

``dynamic``: int8 weights, float activations. TF 2.21 would emit per-channel
``FULLY_CONNECTED`` v12, which tflite-runtime 2.14 cannot load; per-channel quantization of dense
layers is therefore switched off (FULLY_CONNECTED v9) so the file still loads there.
``float16``: float16 weights. ``float32``: no quantization. None of the modes allows Flex
(``SELECT_TF_OPS``) or custom operators: a device runtime has none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.contract import to_model_input
from edge.errors import ModelError
from edge.model_meta import TFLiteInfo, parse_tflite

log = logging.getLogger(__name__)

#: ``--quantize`` choices.
MODES: tuple[str, ...] = ("int8", "float16", "dynamic", "float32")


def representative_dataset(faces: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A converter ``representative_dataset``: one ``(1, S, S, 1)`` float32 face per step."""

    def gen() -> Iterator[list[np.ndarray]]:
        for face in faces:
            yield [to_model_input(face)]

    return gen


def convert(model: Any, mode: str, faces: np.ndarray | None = None) -> tuple[bytes, TFLiteInfo]:
    """Convert a batch-1 ``tf_keras`` model to TFLite.

    Args:
        model: The model from :func:`convert.rebuild.rebuild_tf_keras`.
        mode: One of :data:`MODES`.
        faces: uint8 representative faces ``(N, S, S)``; required for ``int8``.

    Returns:
        ``(flatbuffer bytes, parsed info)``.

    Raises:
        ModelError: for an unknown mode, a converter failure, or a result that contains custom
            or Flex ops or (int8) non-int8 input/output.
    """
    if mode not in MODES:
        raise ModelError(f"unknown quantization {mode!r}; valid: {', '.join(MODES)}")
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure(conv, tf, mode, faces)
    from tensorflow.lite.python.convert import ConverterError

    try:
        data = bytes(conv.convert())
    except (ConverterError, tf.errors.OpError, ValueError, RuntimeError) as e:
        raise ModelError(f"TFLite conversion ({mode}) of {model.name} failed: {e}") from None
    info = parse_tflite(data, f"converted {model.name}")
    check_converted(info, mode, str(model.name))
    return data, info


def _configure(conv: Any, tf: Any, mode: str, faces: np.ndarray | None) -> None:
    """Set the converter's optimizations, op sets and I/O types for ``mode``."""
    if mode == "int8":
        if faces is None or len(faces) == 0:
            raise ModelError("int8 quantization needs a non-empty representative set")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative_dataset(faces)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if mode == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            # Keeps FULLY_CONNECTED at a version tflite-runtime 2.14 understands (see module doc).
            conv._experimental_disable_per_channel_quantization_for_dense_layers = True


def check_converted(info: TFLiteInfo, mode: str, what: str) -> None:
    """Refuse a converted model a device cannot run as intended.

    Raises:
        ModelError: if it has custom/Flex ops, or (int8) non-int8 input or output tensors.
    """
    if info.custom_ops:
        raise ModelError(
            f"{what}: conversion produced custom/Flex ops {list(info.custom_ops)}, which no edge "
            "runtime provides"
        )
    if mode == "int8":
        bad = [
            f"{t.name}: {t.dtype}"
            for t in (*info.inputs, *info.outputs)
            if t.dtype != "int8" or t.scale is None
        ]
        if bad:
            raise ModelError(f"{what}: int8 conversion left non-int8 input/output tensors {bad}")


def quantization_summary(info: TFLiteInfo, mode: str, n_representative: int) -> dict[str, Any]:
    """The ``quantization`` section of the model metadata."""

    def tensor(t: Any) -> dict[str, Any]:
        return {
            "dtype": t.dtype,
            "scale": t.scale,
            "zero_point": t.zero_point,
            "shape": list(t.shape),
        }

    versions: dict[str, int] = {}
    for name, version in info.operators:
        versions[name] = max(version, versions.get(name, 0))
    return {
        "mode": mode,
        "input": tensor(info.inputs[0]),
        "output": tensor(info.outputs[0]),
        "representative_images": n_representative if mode == "int8" else 0,
        "supported_ops": "TFLITE_BUILTINS_INT8" if mode == "int8" else "TFLITE_BUILTINS",
        "ops": list(info.op_names),
        "op_versions": dict(sorted(versions.items())),
    }
