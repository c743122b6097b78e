"""TFLite classifier: one wrapper over ai-edge-litert, tflite-runtime or (last resort) tf.lite.

The model's own metadata (:mod:`edge.model_meta`) says its input size and labels; the wrapper
checks that the interpreter's tensors agree before the first frame. Inputs are quantized and
outputs dequantized with the tensors' own scale and zero point, so int8, uint8 and float models
run through the same code. The fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` of converted CNN-LSTM
models keeps its state in variable tensors between ``invoke()`` calls; every inference therefore
starts with ``reset_all_variables()`` so one face's prediction never leaks into the next.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.classify.base import Classifier, register_classifier
from edge.errors import ModelError
from edge.model_meta import ModelMetadata, metadata_from_bytes

log = logging.getLogger(__name__)

#: Runtimes tried in order; ``tensorflow`` only as a workstation fallback (never on a device).
RUNTIMES: tuple[str, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def load_interpreter_class(runtime: str | None = None) -> tuple[Any, str]:
    """Import a TFLite ``Interpreter`` class.

    Args:
        runtime: Force one of :data:`RUNTIMES`; ``None`` tries them in order.

    Returns:
        ``(Interpreter class, runtime name)``.

    Raises:
        ModelError: if no runtime (or not the requested one) is installed.
    """
    names = RUNTIMES if runtime is None else (runtime,)
    if runtime is not None and runtime not in RUNTIMES:
        raise ModelError(f"unknown TFLite runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    for name in names:
        try:
            if name == "tensorflow":
                # Imported by name only here: the edge package never imports TensorFlow unless
                # neither device runtime is installed (a workstation without ai-edge-litert).
                tf = importlib.import_module("tensorflow")
                return tf.lite.Interpreter, name
            module = importlib.import_module(f"{name}.interpreter")
            return module.Interpreter, name
        except ImportError:
            log.debug("TFLite runtime %s is not installed", name)
    raise ModelError(
        f"no TFLite runtime found (tried {', '.join(names)}); install one: pip install ai-edge-litert"
    )


@register_classifier
class TFLiteClassifier(Classifier):
    """A converted fer-edge ``.tflite`` model behind a TFLite interpreter.

    Args:
        path: The ``.tflite`` file (with fer-edge metadata, see ``fer-convert``).
        num_threads: Interpreter CPU threads.
        runtime: Force a runtime (see :data:`RUNTIMES`); default: the first one installed.

    Raises:
        ModelError: if the file is missing, corrupt, has no metadata, or its tensors do not
            match the metadata (input ``(1, S, S, 1)``, output ``(1, len(labels))``).
    """

    type = "tflite"

    def __init__(self, path: str | Path, num_threads: int = 1, runtime: str | None = None) -> None:
        self._path = Path(path)
        if num_threads < 1:
            raise ModelError(f"num_threads must be >= 1, got {num_threads}")
        if not self._path.is_file():
            raise ModelError(f"model file {self._path} does not exist or is not a file")
        try:
            data = self._path.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read model file {self._path}: {e.strerror}") from None
        # Metadata, hash and interpreter all come from the same bytes, so what was checked is
        # what runs even if the file is replaced meanwhile.
        self._meta, _ = metadata_from_bytes(data, str(self._path))
        self._sha256 = hashlib.sha256(data).hexdigest()
        cls, self._backend = load_interpreter_class(runtime)
        self._delegate = "default"
        try:
            self._interp = cls(model_content=data, num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            if "delegate" not in str(e).lower():
                raise ModelError(
                    f"{self._path}: the TFLite interpreter cannot load it: {e}"
                ) from None
            # XNNPACK refuses some valid int8 graphs (e.g. a layer whose requantization scale
            # is out of its range after calibration); the builtin kernels run them correctly.
            log.warning("%s: default delegate failed (%s); using builtin kernels", path, e)
            self._interp = self._without_delegates(cls, data, num_threads)
            self._delegate = "none"
        self._setup_tensors()
        log.info(
            "loaded %s (%s, %s input, %d labels) with %s",
            self._path,
            self._meta.arch,
            self._in_dtype.__name__,
            len(self._meta.labels),
            self._backend,
        )

    def _without_delegates(self, cls: Any, data: bytes, num_threads: int) -> Any:
        module = importlib.import_module(cls.__module__)
        resolver = getattr(module, "OpResolverType", None)
        if resolver is None:
            raise ModelError(
                f"{self._path}: the TFLite delegate failed and {self._backend} "
                "cannot run without it"
            )
        try:
            interp = cls(
                model_content=data,
                num_threads=num_threads,
                experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self._path}: the TFLite interpreter cannot load it: {e}") from None
        return interp

    def _setup_tensors(self) -> None:
        ins = self._interp.get_input_details()
        outs = self._interp.get_output_details()
        self._check_shapes(ins, outs)
        s = self._meta.input_size
        self._in_index = int(ins[0]["index"])
        self._out_index = int(outs[0]["index"])
        self._in_dtype: type[np.generic] = np.dtype(ins[0]["dtype"]).type
        self._out_dtype: type[np.generic] = np.dtype(outs[0]["dtype"]).type
        in_scale, in_zp = ins[0]["quantization"]
        self._lut = self._input_table(in_scale, in_zp)
        self._out_scale, self._out_zp = self._output_dequantization(*outs[0]["quantization"])
        self._in_buf = np.zeros((1, s, s, 1), dtype=self._in_dtype)
        self._in_view = self._in_buf[0, :, :, 0]
        self._quant_in = (float(in_scale), int(in_zp))

    def _check_shapes(self, ins: list[dict[str, Any]], outs: list[dict[str, Any]]) -> None:
        """One ``[1, S, S, 1]`` input and one ``[1, classes]`` output, as the metadata says."""
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                f"{self._path} has {len(ins)} inputs and {len(outs)} outputs; expected one each"
            )
        s = self._meta.input_size
        in_shape = tuple(int(v) for v in ins[0]["shape"])
        if in_shape != (1, s, s, 1):
            raise ModelError(
                f"{self._path} input tensor shape {list(in_shape)} is not [1, {s}, {s}, 1] as "
                "its metadata/contract says"
            )
        n_classes = len(self._meta.labels)
        out_shape = tuple(int(v) for v in outs[0]["shape"])
        if out_shape != (1, n_classes):
            raise ModelError(
                f"{self._path} output tensor shape {list(out_shape)} does not match its "
                f"{n_classes} labels"
            )

    def _input_table(self, in_scale: float, in_zp: int) -> np.ndarray:
        """The input tensor's value of each pixel 0..255."""
        pixels = np.arange(256, dtype=np.float64)
        if self._in_dtype in (np.int8, np.uint8):
            if not in_scale:
                raise ModelError(f"{self._path}: integer input tensor has no quantization scale")
            # A 256-entry table maps every possible pixel to its quantized value once, so the
            # hot path is a single lookup (and exact: rounding happens here, not per frame).
            lim = np.iinfo(self._in_dtype)  # type: ignore[type-var]
            q = np.clip(np.round(pixels / in_scale + in_zp), lim.min, lim.max)
            return q.astype(self._in_dtype)
        if self._in_dtype == np.float32:
            return pixels.astype(np.float32)  # raw 0..255: normalization is in-model
        raise ModelError(
            f"{self._path}: unsupported input dtype {self._in_dtype.__name__}; "
            "expected int8, uint8 or float32"
        )

    def _output_dequantization(self, out_scale: float, out_zp: int) -> tuple[float, float]:
        """``(scale, zero point)`` that turn the output tensor into float scores."""
        if self._out_dtype in (np.int8, np.uint8, np.int16):
            if not out_scale:
                raise ModelError(f"{self._path}: integer output tensor has no quantization scale")
            return float(out_scale), float(out_zp)
        if self._out_dtype in (np.float32, np.float16):
            return 1.0, 0.0
        raise ModelError(f"{self._path}: unsupported output dtype {self._out_dtype.__name__}")

    @property
    def metadata(self) -> ModelMetadata:
        """The model's embedded metadata."""
        return self._meta

    @property
    def path(self) -> Path:
        """The model file."""
        return self._path

    @property
    def sha256(self) -> str:
        """Hex sha256 of the model bytes as loaded."""
        return self._sha256

    @property
    def backend(self) -> str:
        """The runtime that loaded the model: ``ai_edge_litert``, ``tflite_runtime`` or
        ``tensorflow``."""
        return self._backend

    @property
    def delegate(self) -> str:
        """``default`` (the runtime's default delegate, XNNPACK) or ``none`` (builtin kernels,
        used when the delegate refused the model)."""
        return self._delegate

    @property
    def input_dtype(self) -> str:
        """Input tensor dtype name (``int8`` for full-integer models)."""
        return np.dtype(self._in_dtype).name

    @property
    def input_quantization(self) -> tuple[float, int]:
        """``(scale, zero_point)`` of the input tensor (``(0.0, 0)`` for float inputs)."""
        return self._quant_in

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Classify uint8 faces ``(N, S, S)``, ``(N, S, S, 1)`` or one ``(S, S)``.

        Returns:
            float32 probabilities ``(N, len(labels))``, dequantized from the output tensor.

        Raises:
            ValueError: if the faces do not have the model's input size.
        """
        a = np.asarray(faces)
        if a.ndim == 2:
            a = a[None]
        if a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        s = self._meta.input_size
        if a.ndim != 3 or a.shape[1:] != (s, s):
            raise ValueError(
                f"expected faces of shape (N, {s}, {s}) or (N, {s}, {s}, 1), got {np.shape(faces)}"
            )
        if a.dtype != np.uint8:
            # Crops from edge.contract are uint8 already; anything else is rounded onto 0..255.
            a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        n = a.shape[0]
        out = np.empty((n, len(self._meta.labels)), dtype=np.float32)
        interp = self._interp
        for i in range(n):
            np.take(self._lut, a[i], out=self._in_view, mode="clip")
            interp.set_tensor(self._in_index, self._in_buf)
            # Fused LSTMs keep hidden/cell state in variable tensors across invokes: clear it so
            # every face is classified from the same initial state.
            interp.reset_all_variables()
            interp.invoke()
            out[i] = interp.get_tensor(self._out_index)[0]
        if self._out_scale != 1.0 or self._out_zp != 0.0:
            out -= self._out_zp
            out *= self._out_scale
        return out

    def predict_raw(self, faces: np.ndarray, reset: bool = True) -> np.ndarray:
        """Like :meth:`predict` but returns the raw output tensor values and can skip the state
        reset (for tests and diagnostics of stateful models).
        """
        a = np.asarray(faces)
        if a.ndim == 4:
            a = a[..., 0]
        if a.ndim == 2:
            a = a[None]
        res = []
        for face in a.astype(np.uint8, copy=False):
            np.take(self._lut, face, out=self._in_view, mode="clip")
            self._interp.set_tensor(self._in_index, self._in_buf)
            if reset:
                self._interp.reset_all_variables()
            self._interp.invoke()
            res.append(self._interp.get_tensor(self._out_index)[0].copy())
        return np.stack(res)

    def close(self) -> None:
        """Drop the interpreter (its memory is freed when the last reference goes)."""
        self._interp = None
