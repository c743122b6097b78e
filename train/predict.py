"""Model loading and prediction: ``.keras``/``.h5`` (Keras 3) or ``.tflite`` (edge) files.

One protocol for every model, before and after conversion: faces are uint8 ``(N, S, S)`` crops
fed through :func:`edge.contract.to_model_input` (raw 0..255, normalization is inside the
model) for Keras, or through edge's own :class:`~edge.classify.interpreter.TFLiteClassifier`
for ``.tflite`` files, so the numbers of a float model and its int8 conversion are comparable.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import PreprocessContract, resize_to_contract, to_model_input
from edge.errors import DataError, ModelError

__all__ = [
    "KERAS_SUFFIXES",
    "TFLITE_SUFFIXES",
    "LoadedModel",
    "check_model_labels",
    "load_keras_model",
    "model_info",
    "open_deployed",
    "open_model",
    "predict_probs",
]

log = logging.getLogger(__name__)

#: Model file suffixes :func:`predict_probs` understands.
KERAS_SUFFIXES = (".keras", ".h5")
TFLITE_SUFFIXES = (".tflite",)


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Load a saved Keras 3 model for inference (uncompiled).

    Raises:
        ModelError: if the file is missing or is not a loadable Keras model.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} does not exist")
    if p.suffix.lower() == ".keras" and not zipfile.is_zipfile(p):
        # Keras would say "file not found" for a corrupt archive; name the real problem.
        raise ModelError(f"model file {p} is not a Keras .keras archive (not a zip file)")
    import keras

    try:
        return keras.models.load_model(p, compile=False)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:
        # Keras reports a corrupt/foreign file with many exception types; all mean "unreadable".
        raise ModelError(f"cannot load Keras model {p}: {e}") from e


def _open_tflite(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    from edge.classify.interpreter import TFLiteClassifier

    return TFLiteClassifier(path)


def _is_tflite_classifier(obj: Any) -> bool:
    # edge's TFLiteClassifier: ``predict`` on uint8 faces plus embedded ``metadata``; a Keras
    # model has ``predict_on_batch`` instead.
    return (
        hasattr(obj, "metadata")
        and hasattr(obj, "predict")
        and not hasattr(obj, "predict_on_batch")
    )


def _keras_io(model: Any) -> tuple[int | None, int]:
    """(input side or None, number of output classes) of a Keras model."""
    in_shape = tuple(model.input_shape)
    out_shape = tuple(model.output_shape)
    side = in_shape[1] if len(in_shape) == 4 and in_shape[1] == in_shape[2] else None
    return side, int(out_shape[-1])


def _info_of(handle: Any, path: str | None) -> dict[str, Any]:
    if _is_tflite_classifier(handle):
        md = handle.metadata
        return {
            "path": path,
            "format": "tflite",
            "arch": getattr(md, "arch", None),
            "params": None,
            "num_classes": len(handle.labels),
            "labels": list(handle.labels),
            "input_size": int(md.contract.size),
        }
    side, n_out = _keras_io(handle)
    return {
        "path": path,
        "format": "keras",
        "arch": str(handle.name),
        "params": int(handle.count_params()),
        "num_classes": n_out,
        "labels": None,
        "input_size": side,
    }


@dataclass(frozen=True)
class LoadedModel:
    """A model opened once for inference: the Keras model or edge ``TFLiteClassifier``, and
    what it is (``info``: path, format, arch, params, num_classes, labels, input_size)."""

    handle: Any
    info: dict[str, Any]


def open_model(model_path: str | os.PathLike[str]) -> LoadedModel:
    """Open a ``.keras``/``.h5`` (Keras 3, uncompiled) or ``.tflite`` (edge) model file.

    Raises:
        ModelError: if the file is missing, has an unknown suffix or cannot be loaded.
    """
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix in TFLITE_SUFFIXES:
        handle = _open_tflite(path)
    elif suffix in KERAS_SUFFIXES:
        handle = load_keras_model(path)
    else:
        raise ModelError(
            f"model file {path} has unknown suffix {suffix!r}; valid: "
            f"{', '.join(KERAS_SUFFIXES + TFLITE_SUFFIXES)}"
        )
    return LoadedModel(handle, _info_of(handle, str(path)))


def open_deployed(config: str | Path | None = None) -> LoadedModel:
    """The face classifier ``fer-edge run`` builds from ``config``'s ``[model]`` section (the
    package defaults when ``None``), through the same function
    (:func:`edge.classify.deployed.open_configured`).

    Raises:
        ConfigError: an invalid config (naming the key).
        ModelError: a model that cannot be loaded or members that do not agree.
    """
    from edge.classify.deployed import open_configured
    from edge.config import load_config

    cfg = load_config(config)
    clf = open_configured(cfg.model)
    info = _info_of(clf, str(clf.path))
    info["deployed"] = clf.describe() | {"config": str(config) if config else None}
    return LoadedModel(clf, info)


def _fit_size(images: np.ndarray, side: int | None) -> np.ndarray:
    """Resize faces to the model's input side through the contract if they differ."""
    if side is None or images.shape[1] == side:
        return images
    log.info("resizing %d faces from %d to %d px (contract)", len(images), images.shape[1], side)
    contract = PreprocessContract(size=int(side))
    return np.stack([resize_to_contract(im, contract) for im in images])


def _as_probs(out: np.ndarray) -> np.ndarray:
    # Registry models end in softmax; a logits model is turned into probabilities so AUC and
    # argmax behave the same for every model. Dequantized int8 softmax outputs are multiples of
    # 1/256, so their row sums can miss 1 by a few steps: that is still probabilities.
    looks_like_probs = (
        out.min() >= -0.01 and out.max() <= 1.01 and np.allclose(out.sum(axis=1), 1.0, atol=0.05)
    )
    if not looks_like_probs:
        log.warning("model outputs do not look like probabilities; applying softmax")
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _batches(n: int, batch_size: int, desc: str) -> Iterator[tuple[int, int]]:
    from tqdm.auto import tqdm

    # disable=None: bars only on a terminal, so logs and CI output stay clean.
    with tqdm(total=n, desc=desc, unit="face", disable=None, leave=False) as bar:
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            yield s, e
            bar.update(e - s)


def _as_faces(images: np.ndarray) -> np.ndarray:
    """``images`` as uint8 ``(N, S, S)`` (a trailing channel of 1 dropped, values clipped).

    Raises:
        DataError: if there are no faces or they are not square ``(N, S, S)``.
    """
    imgs = np.asarray(images)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise DataError(f"expected faces of shape (N, S, S), got {imgs.shape}")
    if len(imgs) == 0:
        raise DataError("no faces to predict (empty evaluation split)")
    if imgs.dtype != np.uint8:
        imgs = np.clip(imgs, 0, 255).astype(np.uint8)
    return imgs


def predict_probs(model_or_path: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of uint8 faces under a Keras model or a ``.tflite`` file.

    Args:
        model_or_path: A path to ``.keras``/``.h5`` or ``.tflite``, a loaded Keras model, an
            edge ``TFLiteClassifier`` or a :class:`LoadedModel`. TFLite runs through edge's
            classifier (the device code path); Keras gets
            :func:`edge.contract.to_model_input` (raw 0..255 float32, ``(N, S, S, 1)``).
        images: uint8 faces ``(N, S, S)``; resized through the contract if the model wants
            another side.
        batch_size: Faces per inference call.

    Returns:
        ``(N, C)`` float32 probabilities.

    Raises:
        ModelError: if the model cannot be loaded or its suffix is unknown.
        DataError: if ``images`` is empty or not ``(N, S, S)``.
    """
    imgs = _as_faces(images)
    batch_size = max(1, int(batch_size))
    if isinstance(model_or_path, str | os.PathLike):
        model_or_path = open_model(model_or_path)
    if isinstance(model_or_path, LoadedModel):
        handle, info = model_or_path.handle, model_or_path.info
    else:
        handle, info = model_or_path, _info_of(model_or_path, None)
    name = Path(info["path"]).name if info["path"] else str(info["arch"])
    imgs = _fit_size(imgs, info["input_size"])
    parts = []
    for s, e in _batches(len(imgs), batch_size, f"predict {name}"):
        if info["format"] == "tflite":
            out = handle.predict(imgs[s:e])
        else:
            out = handle.predict_on_batch(to_model_input(imgs[s:e]))
        parts.append(np.asarray(out, dtype=np.float32))
    return _as_probs(np.concatenate(parts))


def model_info(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Architecture name, parameter count, output classes and labels of a model file.

    TFLite files report what their metadata says (``params`` is ``None`` for them).

    Raises:
        ModelError: if the file cannot be read.
    """
    return open_model(model_path).info


def check_model_labels(info: Mapping[str, Any], label_names: Sequence[str]) -> None:
    """Fail early when a model cannot score data with ``label_names``.

    Raises:
        ModelError: if the output size differs from the number of labels, or a TFLite model's
            embedded label list differs from the data's.
    """
    n = len(label_names)
    if info["num_classes"] != n:
        raise ModelError(
            f"model {info['path']} outputs {info['num_classes']} classes but the data has "
            f"{n} labels ({', '.join(label_names)}); pick the matching --labels"
        )
    if info.get("labels") is not None and list(info["labels"]) != list(label_names):
        raise ModelError(
            f"model {info['path']} was trained for labels {list(info['labels'])}, the data has "
            f"{list(label_names)}"
        )
