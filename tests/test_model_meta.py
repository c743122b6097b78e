"""edge.model_meta: the embedded metadata round-trips and bad files fail with ModelError.

These tests need no TensorFlow: the TFLite flatbuffers are built with the schema object API of
ai-edge-litert (a classifier-shaped graph: int8 input (1, 48, 48, 1), int8 output (1, C)).
"""

from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edge.contract import DEFAULT_CONTRACT, FERPLUS_LABELS, PreprocessContract
from edge.errors import ModelError
from edge.model_meta import (
    FORMAT_VERSION,
    METADATA_NAME,
    ModelMetadata,
    embed_metadata,
    file_sha256,
    metadata_from_bytes,
    parse_tflite,
    read_metadata,
    read_tflite_info,
)


def _tensor(shape: list[int], name: str, buffer: int, scale: float, zp: int) -> schema.TensorT:
    t = schema.TensorT()
    t.shape = np.array(shape, dtype=np.int32)
    t.type = schema.TensorType.INT8
    t.buffer = buffer
    t.name = name
    q = schema.QuantizationParametersT()
    q.scale = [scale]
    q.zeroPoint = [zp]
    t.quantization = q
    return t


def make_tflite(
    n_classes: int = 7, size: int = 48, extra_meta: dict[str, bytes] | None = None
) -> bytes:
    """A structurally valid TFLite flatbuffer with a classifier's input/output tensors."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 4
    model.operatorCodes = [code]
    sg = schema.SubGraphT()
    sg.tensors = [
        _tensor([1, size, size, 1], "image", 1, 1.0, -128),
        _tensor([1, n_classes], "probs", 2, 1 / 256, -128),
        _tensor([n_classes, size * size], "weights", 3, 0.01, 0),
    ]
    sg.inputs = np.array([0], dtype=np.int32)
    sg.outputs = np.array([1], dtype=np.int32)
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs = np.array([0, 2, -1], dtype=np.int32)
    op.outputs = np.array([1], dtype=np.int32)
    sg.operators = [op]
    model.subgraphs = [sg]
    weights = schema.BufferT()
    weights.data = np.arange(n_classes * size * size, dtype=np.uint8)
    model.buffers = [schema.BufferT(), schema.BufferT(), schema.BufferT(), weights]
    model.metadata = []
    for name, raw in (extra_meta or {}).items():
        b = schema.BufferT()
        b.data = np.frombuffer(raw, dtype=np.uint8)
        model.buffers.append(b)
        m = schema.MetadataT()
        m.name = name
        m.buffer = len(model.buffers) - 1
        model.metadata.append(m)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def make_meta(labels: tuple[str, ...] = DEFAULT_CONTRACT.labels, **kw: object) -> ModelMetadata:
    contract = PreprocessContract(labels=labels)
    fields: dict[str, object] = {
        "arch": "bagga_cnn1",
        "seed": "002_8ee55e6a24b679ae.txt",
        "labels": labels,
        "input_shape": contract.input_shape,
        "contract": contract,
        "quantization": {"mode": "int8", "ops": ["FULLY_CONNECTED"]},
        "training": {"command": "fer-train train --arch bagga_cnn1", "seed": 42, "commit": "abc"},
        "metrics": {"accuracy": 0.61, "macro_f1": 0.55},
        "parity": {"drop_pp": 0.3, "top1_agreement": 0.98},
        "created": "2026-01-01T00:00:00+00:00",
        "tool_version": "0.1.0",
    }
    fields.update(kw)
    return ModelMetadata(**fields)  # type: ignore[arg-type]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    p = tmp_path / "m.tflite"
    p.write_bytes(embed_metadata(make_tflite(), make_meta()))
    return p


def test_metadata_round_trips_through_the_flatbuffer(model_file: Path) -> None:
    meta = read_metadata(model_file)
    assert meta == make_meta()
    assert meta.labels == DEFAULT_CONTRACT.labels
    assert meta.input_size == 48
    assert meta.format_version == FORMAT_VERSION
    assert ModelMetadata.from_dict(json.loads(meta.to_json())) == meta


def test_ferplus_labels_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "fp.tflite"
    meta = make_meta(labels=FERPLUS_LABELS)
    p.write_bytes(embed_metadata(make_tflite(n_classes=8), meta))
    assert read_metadata(p).labels == FERPLUS_LABELS


def test_embedding_twice_replaces_the_entry_and_keeps_others() -> None:
    raw = make_tflite(extra_meta={"min_runtime_version": b"1.14.0\x00"})
    once = embed_metadata(raw, make_meta())
    twice = embed_metadata(once, make_meta(arch="bagga_cnn_lstm2"))
    info = parse_tflite(twice)
    assert sorted(info.metadata) == ["fer_edge", "min_runtime_version"]
    assert info.metadata["min_runtime_version"] == b"1.14.0\x00"
    meta, _ = metadata_from_bytes(twice)
    assert meta.arch == "bagga_cnn_lstm2"
    # Replacing reuses the buffer: the second file is not larger by a second copy.
    assert len(twice) - len(once) < 64


def test_parse_reports_tensors_and_operators() -> None:
    info = parse_tflite(make_tflite())
    assert info.inputs[0].shape == (1, 48, 48, 1)
    assert info.inputs[0].dtype == "int8"
    assert info.inputs[0].scale == 1.0 and info.inputs[0].zero_point == -128
    assert info.outputs[0].shape == (1, 7)
    assert info.operators == (("FULLY_CONNECTED", 4),)
    assert info.op_sequence == ("FULLY_CONNECTED",)
    assert info.custom_ops == ()


def test_file_sha256_matches_hashlib(model_file: Path) -> None:
    import hashlib

    assert file_sha256(model_file) == hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        read_metadata(tmp_path / "nope.tflite")


def test_not_a_tflite_file(tmp_path: Path) -> None:
    p = tmp_path / "x.tflite"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_metadata(p)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_file_is_a_model_error(tmp_path: Path, fraction: float) -> None:
    data = embed_metadata(make_tflite(), make_meta())
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError):
        read_metadata(p)


def test_random_corruption_never_escapes_as_another_exception() -> None:
    data = bytes(embed_metadata(make_tflite(), make_meta()))
    meta, info = metadata_from_bytes(data)
    raw = info.metadata[METADATA_NAME]
    json_at = data.find(raw)
    json_span = range(json_at, json_at + len(raw))
    assert json_at > 0
    rng = np.random.default_rng(0)
    detected = 0
    for _ in range(200):
        bad = bytearray(data)
        positions = [int(p) for p in rng.integers(8, len(bad), size=4)]
        for pos in positions:
            bad[pos] = int(rng.integers(0, 256))
        try:
            got, _ = metadata_from_bytes(bytes(bad))
        except ModelError:
            detected += 1
            continue
        # Undetected is fine only when the metadata read back is the original (the bytes hit
        # weights or padding), or when a byte inside the metadata JSON changed a value and the
        # JSON stayed valid (the format has no checksum; sha256 in the sidecar covers files).
        assert got == meta or any(p in json_span for p in positions), positions
    # Seed 0 measured 48 of 200 detected (the rest hit weights); a reader that never raised
    # would pass the loop above only by luck, so the detection itself is asserted.
    assert detected >= 20


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("identifier", "not a TFLite model"),
        ("json", "not valid JSON"),
        ("root", "corrupt or truncated"),
    ],
)
def test_targeted_corruption_is_detected(where: str, message: str) -> None:
    data = bytearray(embed_metadata(make_tflite(), make_meta()))
    _, info = metadata_from_bytes(bytes(data))
    if where == "identifier":
        data[4:8] = b"XXXX"
    elif where == "json":
        data[bytes(data).find(info.metadata[METADATA_NAME])] = ord("[")  # "{" -> "[": not JSON
    else:
        data[0:4] = (len(data) + 1000).to_bytes(4, "little")  # root table past the end
    with pytest.raises(ModelError, match=message):
        metadata_from_bytes(bytes(data))


def test_model_without_metadata(tmp_path: Path) -> None:
    p = tmp_path / "plain.tflite"
    p.write_bytes(make_tflite(extra_meta={"min_runtime_version": b"2.3\x00"}))
    with pytest.raises(ModelError, match="no 'fer_edge' metadata"):
        read_metadata(p)
    assert read_tflite_info(p).metadata == {"min_runtime_version": b"2.3\x00"}


def test_metadata_that_is_not_json(tmp_path: Path) -> None:
    p = tmp_path / "bad.tflite"
    p.write_bytes(make_tflite(extra_meta={METADATA_NAME: b"{not json"}))
    with pytest.raises(ModelError, match="not valid JSON"):
        read_metadata(p)


def test_label_count_must_match_output(tmp_path: Path) -> None:
    p = tmp_path / "mismatch.tflite"
    p.write_bytes(
        embed_metadata(make_tflite(n_classes=7), make_meta(labels=FERPLUS_LABELS), check=False)
    )
    with pytest.raises(ModelError, match="8 labels"):
        read_metadata(p)
    with pytest.raises(ModelError, match="8 labels"):
        embed_metadata(make_tflite(n_classes=7), make_meta(labels=FERPLUS_LABELS))


def test_input_size_must_match_contract(tmp_path: Path) -> None:
    p = tmp_path / "size.tflite"
    p.write_bytes(embed_metadata(make_tflite(size=64), make_meta(), check=False))
    with pytest.raises(ModelError, match="input shape"):
        read_metadata(p)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    doc = make_meta().to_dict() | {"format_version": FORMAT_VERSION + 1}
    p = tmp_path / "new.tflite"
    p.write_bytes(make_tflite(extra_meta={METADATA_NAME: json.dumps(doc).encode()}))
    with pytest.raises(ModelError, match="newer"):
        read_metadata(p)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": ["only"]}, "at least 2"),
        ({"labels": ["a", "a"]}, "duplicate"),
        ({"input_shape": [64, 64, 1]}, "does not match"),
        ({"contract": {"size": 48, "colour": True}}, "unknown keys"),
        ({"quantization": [1, 2]}, "not a JSON object"),
    ],
)
def test_invalid_metadata_documents(change: dict[str, object], message: str) -> None:
    doc = make_meta().to_dict() | change
    with pytest.raises(ModelError, match=message):
        ModelMetadata.from_dict(doc)


def test_missing_required_keys() -> None:
    doc = make_meta().to_dict()
    del doc["labels"]
    with pytest.raises(ModelError, match="labels"):
        ModelMetadata.from_dict(doc)
