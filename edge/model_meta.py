"""Model metadata embedded in a ``.tflite`` file, readable on a device without TensorFlow.

``fer-convert`` stores one JSON document under the name :data:`METADATA_NAME` in the TFLite
flatbuffer's ``metadata`` section (``Model.metadata: [Metadata{name, buffer}]``; the buffer bytes
are UTF-8 JSON). It says what the model is (architecture, seed, labels in output order, input
shape, preprocessing contract, quantization) and where it came from (training data, command,
validation metrics, parity report), so the edge runtime reads sizes and labels from the model and
never from literals.

Reading uses a small, bounds-checked flatbuffer reader written against the TFLite schema
(:mod:`edge.tflite_reader`), so a truncated or foreign file raises
:class:`~edge.errors.ModelError` instead of crashing, and no schema package is needed on the
device. Writing (:func:`embed_metadata`, used by ``convert/``) uses the object API of the schema
module that ships with ``ai-edge-litert``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.contract import PreprocessContract
from edge.errors import ModelError
from edge.tflite_reader import TFLITE_IDENTIFIER as TFLITE_IDENTIFIER  # re-exported
from edge.tflite_reader import TensorInfo as TensorInfo
from edge.tflite_reader import TFLiteInfo, parse_tflite

log = logging.getLogger(__name__)

#: Name of the metadata entry holding the fer-edge JSON document.
METADATA_NAME = "fer_edge"
#: Version of the metadata JSON layout; readers refuse newer versions.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelMetadata:
    """What a converted model is and where it came from (the embedded ``fer_edge`` document).

    Attributes:
        arch: Registry architecture name (``train.models``), e.g. ``bagga_cnn1``.
        seed: Seed paper file the architecture comes from.
        labels: Label names in model output order.
        input_shape: Model input shape without the batch axis, ``(S, S, 1)``.
        contract: The preprocessing contract the model was trained and converted with.
        quantization: Mode, input/output scale and zero point, representative set size, op list.
        training: Training data description, command, seed and code commit.
        metrics: Validation metrics of the float model from training.
        parity: The conversion parity report (float vs. converted on the validation split).
        calibration: The temperature fitted by ``fer-train calibrate`` and the setting it was
            fitted for (``setting``: test-time views and the other ensemble members' sha256),
            with the data it was fitted on and the ECE before/after (empty: uncalibrated).
        created: Creation time, UTC ISO-8601.
        tool_version: fer-edge version that wrote the metadata.
        format_version: Metadata layout version (:data:`FORMAT_VERSION`).
    """

    arch: str
    seed: str
    labels: tuple[str, ...]
    input_shape: tuple[int, int, int]
    contract: PreprocessContract
    quantization: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    tool_version: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # Validation lives here so metadata built in code and metadata read from a file obey
        # the same rules.
        if len(self.labels) < 2:
            raise ModelError(f"model metadata has {len(self.labels)} labels; need at least 2")
        if len(set(self.labels)) != len(self.labels):
            raise ModelError(f"model metadata has duplicate labels: {list(self.labels)}")
        if tuple(self.input_shape) != self.contract.input_shape:
            raise ModelError(
                f"model metadata input_shape {list(self.input_shape)} does not match the "
                f"preprocessing contract's {list(self.contract.input_shape)}"
            )
        if tuple(self.labels) != tuple(self.contract.labels):
            raise ModelError(
                f"model metadata labels {list(self.labels)} differ from the contract's "
                f"{list(self.contract.labels)}"
            )

    @property
    def input_size(self) -> int:
        """Side of the square model input in pixels."""
        return int(self.input_shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (lists instead of tuples)."""
        return {
            "format_version": self.format_version,
            "arch": self.arch,
            "seed": self.seed,
            "labels": list(self.labels),
            "input_shape": list(self.input_shape),
            "contract": self.contract.to_dict(),
            "quantization": self.quantization,
            "training": self.training,
            "metrics": self.metrics,
            "parity": self.parity,
            "created": self.created,
            "tool_version": self.tool_version,
            # Only when fitted, so an uncalibrated model's metadata reads as it always has.
            **({"calibration": self.calibration} if self.calibration else {}),
        }

    def to_json(self, indent: int | None = None) -> str:
        """Serialize to JSON text (sorted keys, so equal metadata gives equal bytes)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetadata:
        """Build metadata from :meth:`to_dict` output.

        Raises:
            ModelError: naming the missing or invalid key, or a newer format version.
        """
        version = _check_header(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            # Same major version, extra keys: a newer writer added optional information.
            log.debug("ignoring unknown model metadata keys %s", sorted(unknown))
        labels, shape = _labels_and_shape(d)
        contract = _contract(d["contract"])
        for key in _SECTIONS:
            if not isinstance(d.get(key, {}), dict):
                raise ModelError(f"model metadata {key!r} is not a JSON object")
        return cls(
            arch=str(d["arch"]),
            seed=str(d.get("seed", "")),
            labels=labels,
            input_shape=shape,
            contract=contract,
            **{key: dict(d.get(key, {})) for key in _SECTIONS},
            created=str(d.get("created", "")),
            tool_version=str(d.get("tool_version", "")),
            format_version=int(version),
        )


#: The free-form sections of the document (JSON objects).
_SECTIONS = ("quantization", "training", "metrics", "parity", "calibration")


def _check_header(d: Any) -> int:
    """A JSON object with the required keys and a format this reader understands; returns the
    format version."""
    if not isinstance(d, dict):
        raise ModelError(f"model metadata must be a JSON object, got {type(d).__name__}")
    required = ("arch", "labels", "input_shape", "contract")
    missing = [k for k in required if k not in d]
    if missing:
        raise ModelError(f"model metadata lacks required keys {missing}")
    version = d.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"model metadata format_version {version!r} is newer than this fer-edge "
            f"understands ({FORMAT_VERSION}); upgrade fer-edge"
        )
    return version


def _labels_and_shape(d: dict[str, Any]) -> tuple[tuple[str, ...], tuple[int, int, int]]:
    try:
        labels = tuple(str(v) for v in d["labels"])
        shape = tuple(int(v) for v in d["input_shape"])
    except (TypeError, ValueError) as e:
        raise ModelError(f"model metadata labels/input_shape are malformed: {e}") from None
    if len(shape) != 3:
        raise ModelError(f"model metadata input_shape {list(shape)} is not (size, size, 1)")
    return labels, (shape[0], shape[1], shape[2])


def _contract(contract_d: Any) -> PreprocessContract:
    if not isinstance(contract_d, dict):
        raise ModelError("model metadata 'contract' is not a JSON object")
    try:
        return PreprocessContract.from_dict(contract_d)
    except (TypeError, ValueError) as e:
        raise ModelError(f"model metadata 'contract' is invalid: {e}") from None


def _read_bytes(path: str | Path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} does not exist or is not a file")
    try:
        return p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {p}: {e.strerror}") from None


def metadata_from_bytes(data: bytes, what: str = "model") -> tuple[ModelMetadata, TFLiteInfo]:
    """Parse a TFLite model's bytes and return its fer-edge metadata and flatbuffer info.

    Checks that the metadata agrees with the model: one input of shape ``(1, S, S, 1)`` with
    ``S`` the contract size, one output of ``len(labels)`` classes.

    Raises:
        ModelError: for a non-TFLite/corrupt file, missing or invalid metadata, or a model whose
            tensors do not match its metadata.
    """
    info = parse_tflite(data, what)
    raw = info.metadata.get(METADATA_NAME)
    if raw is None:
        raise ModelError(
            f"{what} has no {METADATA_NAME!r} metadata (entries: {sorted(info.metadata)}); "
            "convert it with fer-convert"
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{what}: {METADATA_NAME!r} metadata is not valid JSON: {e}") from None
    meta = ModelMetadata.from_dict(doc)
    check_tensors(meta, info, what)
    return meta, info


def check_tensors(meta: ModelMetadata, info: TFLiteInfo, what: str = "model") -> None:
    """Raise :class:`ModelError` unless the model's tensors match its metadata."""
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise ModelError(
            f"{what} has {len(info.inputs)} inputs and {len(info.outputs)} outputs; a face "
            "classifier has exactly one of each"
        )
    s = meta.input_size
    in_shape = info.inputs[0].shape
    if len(in_shape) != 4 or tuple(in_shape[1:]) != (s, s, 1):
        raise ModelError(
            f"{what} input shape {list(in_shape)} does not match metadata (N, {s}, {s}, 1)"
        )
    out_shape = info.outputs[0].shape
    if len(out_shape) != 2 or out_shape[1] != len(meta.labels):
        raise ModelError(
            f"{what} output shape {list(out_shape)} does not match the {len(meta.labels)} "
            f"labels in its metadata"
        )


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read the fer-edge metadata embedded in a ``.tflite`` file.

    Raises:
        ModelError: if the file is missing, not a TFLite model, truncated or corrupt, has no
            fer-edge metadata, or its tensors disagree with the metadata.
    """
    return metadata_from_bytes(_read_bytes(path), str(path))[0]


def read_tflite_info(path: str | Path) -> TFLiteInfo:
    """Parse a ``.tflite`` file's flatbuffer (tensors, operators, metadata entries).

    Raises:
        ModelError: if the file is missing, not a TFLite model, truncated or corrupt.
    """
    return parse_tflite(_read_bytes(path), str(path))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks.

    Raises:
        ModelError: if the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None
    return h.hexdigest()


def embed_metadata(data: bytes, meta: ModelMetadata, check: bool = True) -> bytes:
    """Return ``data`` (a TFLite model) with ``meta`` stored as its ``fer_edge`` metadata.

    An existing ``fer_edge`` entry is replaced; other entries (the converter's
    ``min_runtime_version``, ``CONVERSION_METADATA``) are kept. The model is re-serialized with
    the schema object API of ``ai-edge-litert``; tensors, buffers and operators are unchanged.

    Args:
        data: The converter's output.
        meta: Metadata to store.
        check: Refuse metadata that disagrees with the model's tensors (``False`` only to
            build deliberately broken files in tests).

    Raises:
        ModelError: if ``data`` is not a TFLite model or (``check``) its tensors disagree.
    """
    info = parse_tflite(data)  # validates before the (unchecked) object API touches it
    if check:
        check_tensors(meta, info)
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    payload = np.frombuffer(meta.to_json().encode("utf-8"), dtype=np.uint8)
    _set_metadata_buffer(schema, model, payload)
    builder = flatbuffers.Builder(len(data) + len(payload) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _set_metadata_buffer(schema: Any, model: Any, payload: Any) -> None:
    """Point the model's ``fer_edge`` metadata entry at a buffer holding ``payload``."""
    if model.buffers is None:
        model.buffers = []
    if model.metadata is None:
        model.metadata = []
    existing = [m for m in model.metadata if _name(m.name) == METADATA_NAME]
    buf = schema.BufferT()
    buf.data = payload
    if existing:
        # Reuse the old entry's buffer so re-embedding does not leave an orphan behind.
        model.buffers[existing[0].buffer] = buf
    else:
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)


def _name(v: str | bytes | None) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v or ""


def write_model(out: Path, data: bytes, meta: ModelMetadata) -> str:
    """Write ``out`` (``data`` with ``meta`` embedded) and its sidecar ``out.json`` (the metadata
    plus file name, sha256 and size), each atomically (:mod:`edge.atomic`).

    Returns:
        The sha256 of the written model.

    Raises:
        ModelError: if ``meta`` disagrees with the model's tensors.
    """
    from edge.atomic import write_bytes_atomic, write_json

    model = embed_metadata(data, meta)
    sha = hashlib.sha256(model).hexdigest()
    doc = {**meta.to_dict(), "file": out.name, "sha256": sha, "bytes": len(model)}
    write_bytes_atomic(out, model)
    write_json(out.with_suffix(".json"), doc, sort_keys=True)
    log.info("wrote %s (%d bytes, sha256 %s)", out, len(model), sha)
    return sha
