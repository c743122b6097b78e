"""A small, bounds-checked reader of TFLite flatbuffers: what a model's file says about it
(input/output tensors, operators, metadata entries) without TensorFlow or a schema package.

Written against the TFLite schema (the fields used here have been stable since schema v3). Every
read is bounds-checked, so a truncated or foreign file raises :class:`~edge.errors.ModelError`
naming the file instead of crashing (here or later inside the interpreter).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from edge.errors import ModelError

#: TFLite flatbuffer file identifier (bytes 4..8).
TFLITE_IDENTIFIER = b"TFL3"

# TensorType enum of the TFLite schema (only the types a classifier can have as input/output).
_TENSOR_TYPES: dict[int, str] = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor of subgraph 0, as stored in the flatbuffer."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class TFLiteInfo:
    """What the flatbuffer itself says about a model (no interpreter needed).

    Attributes:
        version: Schema version (3 for every current converter).
        inputs: Input tensors of the main subgraph.
        outputs: Output tensors of the main subgraph.
        operators: ``(op name, version)`` per operator code; custom ops as ``CUSTOM:<code>``.
        metadata: Metadata entry name -> raw bytes.
        op_sequence: Operator name of every node of the main subgraph, in execution order.
    """

    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    operators: tuple[tuple[str, int], ...]
    metadata: dict[str, bytes]
    op_sequence: tuple[str, ...] = ()

    @property
    def op_names(self) -> tuple[str, ...]:
        """Sorted unique operator names."""
        return tuple(sorted({name for name, _ in self.operators}))

    @property
    def custom_ops(self) -> tuple[str, ...]:
        """Custom (including Flex/select TensorFlow) operators; a device runtime has none."""
        return tuple(n for n in self.op_names if n.startswith("CUSTOM:"))


class _Reader:
    """Bounds-checked access to flatbuffer tables, vectors and strings."""

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = buf
        self.what = what

    def _fail(self, msg: str) -> ModelError:
        return ModelError(f"{self.what} is not a valid TFLite model (corrupt or truncated): {msg}")

    def _unpack(self, fmt: str, pos: int) -> Any:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.buf):
            raise self._fail(f"read of {size} bytes at offset {pos} past end ({len(self.buf)})")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def root(self) -> int:
        return self._deref(0)

    def _deref(self, pos: int) -> int:
        return pos + int(self._unpack("<I", pos))

    def _field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of ``table``, or 0 when absent."""
        vtable = table - int(self._unpack("<i", table))
        vsize = int(self._unpack("<H", vtable))
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return 0
        off = int(self._unpack("<H", vtable + slot))
        return table + off if off else 0

    def scalar(self, table: int, index: int, fmt: str, default: Any) -> Any:
        pos = self._field(table, index)
        return self._unpack(fmt, pos) if pos else default

    def table(self, table: int, index: int) -> int:
        pos = self._field(table, index)
        return self._deref(pos) if pos else 0

    def string(self, table: int, index: int) -> str | None:
        raw = self.bytes_(table, index)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("string field is not UTF-8") from None

    def _vector(
        self, table: int, index: int, elem_size: int, what: str = "vector"
    ) -> tuple[int, int]:
        """``(position of the first element, length)`` of a vector field after checking it lies
        inside the buffer; ``(0, 0)`` when absent."""
        pos = self._field(table, index)
        if not pos:
            return 0, 0
        start = self._deref(pos)
        n = int(self._unpack("<I", start))
        if start + 4 + n * elem_size > len(self.buf):
            unit = "bytes" if what == "bytes" else "elements"
            kind = "vector" if what == "bytes" else what
            raise self._fail(f"{kind} of {n} {unit} at offset {start} past end")
        return start + 4, n

    def bytes_(self, table: int, index: int) -> bytes | None:
        if not self._field(table, index):
            return None
        first, n = self._vector(table, index, 1, "bytes")
        return bytes(self.buf[first : first + n])

    def vector(self, table: int, index: int, fmt: str) -> list[Any]:
        first, n = self._vector(table, index, struct.calcsize(fmt))
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, first)) if n else []

    def vector_length(self, table: int, index: int, elem_size: int) -> int:
        """Length of a vector field after checking it lies inside the buffer (0 if absent)."""
        return self._vector(table, index, elem_size)[1]

    def tables(self, table: int, index: int) -> list[int]:
        first, n = self._vector(table, index, 4, "table vector")
        return [self._deref(first + 4 * i) for i in range(n)]


def _builtin_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema ai-edge-litert ships (if installed)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return {}
    return {
        int(v): k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }


def parse_tflite(data: bytes, what: str = "model") -> TFLiteInfo:
    """Parse the parts of a TFLite flatbuffer fer-edge needs.

    Args:
        data: The whole ``.tflite`` file.
        what: How to name the file in error messages (usually its path).

    Raises:
        ModelError: if the bytes are not a TFLite flatbuffer or are truncated/corrupt.
    """
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{what} is not a TFLite model (no 'TFL3' file identifier; {len(data)} bytes)"
        )
    r = _Reader(data, what)
    model = r.root()
    version = int(r.scalar(model, 0, "<I", 0))
    operators = _operator_codes(r, model)
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise r._fail("no subgraphs")
    sg = subgraphs[0]
    tensors = r.tables(sg, 0)
    op_sequence = _op_sequence(r, sg, operators)
    inputs = tuple(_tensor(r, tensors, int(i)) for i in r.vector(sg, 1, "i"))
    outputs = tuple(_tensor(r, tensors, int(i)) for i in r.vector(sg, 2, "i"))
    buffers = r.tables(model, 4)
    for b in buffers:
        # Bounds-check every weight buffer so a file cut short anywhere is caught here, not by
        # a crash inside the interpreter.
        r.vector_length(b, 0, 1)
    metadata = dict(_metadata(r, model, buffers))
    return TFLiteInfo(version, inputs, outputs, tuple(operators), metadata, tuple(op_sequence))


def _operator_codes(r: _Reader, model: int) -> list[tuple[str, int]]:
    """``(name, version)`` of every operator code; custom ops as ``CUSTOM:<code>``."""
    names = _builtin_names()
    operators: list[tuple[str, int]] = []
    for oc in r.tables(model, 1):
        deprecated = int(r.scalar(oc, 0, "<b", 0))
        custom = r.string(oc, 1)
        op_version = int(r.scalar(oc, 2, "<i", 1))
        code = max(deprecated, int(r.scalar(oc, 3, "<i", 0)))
        if custom is not None:
            name = f"CUSTOM:{custom}"
        else:
            name = names.get(code, f"BUILTIN_{code}")
        operators.append((name, op_version))
    return operators


def _op_sequence(r: _Reader, sg: int, operators: list[tuple[str, int]]) -> list[str]:
    """The operator name of every node of subgraph ``sg``, in execution order."""
    out: list[str] = []
    for op in r.tables(sg, 3):
        idx = int(r.scalar(op, 0, "<I", 0))
        if not 0 <= idx < len(operators):
            raise r._fail(f"operator code index {idx} out of range ({len(operators)} codes)")
        out.append(operators[idx][0])
    return out


def _tensor(r: _Reader, tensors: list[int], i: int) -> TensorInfo:
    """Tensor ``i`` of the main subgraph (name, shape, type, per-tensor quantization)."""
    if not 0 <= i < len(tensors):
        raise r._fail(f"tensor index {i} out of range ({len(tensors)} tensors)")
    t = tensors[i]
    q = r.table(t, 4)
    scales = r.vector(q, 2, "f") if q else []
    zps = r.vector(q, 3, "q") if q else []
    ttype = int(r.scalar(t, 1, "<b", 0))
    return TensorInfo(
        name=r.string(t, 3) or "",
        shape=tuple(int(v) for v in r.vector(t, 0, "i")),
        dtype=_TENSOR_TYPES.get(ttype, f"type{ttype}"),
        scale=float(scales[0]) if len(scales) == 1 else None,
        zero_point=int(zps[0]) if len(zps) == 1 else None,
    )


def _metadata(r: _Reader, model: int, buffers: list[int]) -> list[tuple[str, bytes]]:
    """Every metadata entry's name and the bytes of the buffer it points at."""
    out: list[tuple[str, bytes]] = []
    for m in r.tables(model, 6):
        name = r.string(m, 0) or ""
        bi = int(r.scalar(m, 1, "<I", 0))
        if not 0 <= bi < len(buffers):
            raise r._fail(f"metadata {name!r} points at buffer {bi} of {len(buffers)}")
        raw = r.bytes_(buffers[bi], 0)
        out.append((name, raw if raw is not None else _external_buffer(r, buffers[bi], name)))
    return out


def _external_buffer(r: _Reader, buffer: int, name: str) -> bytes:
    """Models over 2 GB keep buffer data after the flatbuffer (offset/size fields)."""
    offset = int(r.scalar(buffer, 1, "<Q", 0))
    size = int(r.scalar(buffer, 2, "<Q", 0))
    if offset > 1 and offset + size <= len(r.buf):
        return bytes(r.buf[offset : offset + size])
    if offset > 1:
        raise r._fail(f"metadata {name!r} buffer lies past the end of the file")
    return b""
