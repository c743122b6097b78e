"""edge.classify: the TFLite classifier on real converted models and real FER2013 faces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.classify import TFLiteClassifier, create_classifier, load_interpreter_class
from edge.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[1]


def test_import_does_not_pull_in_tensorflow() -> None:
    code = (
        "import sys, edge.classify.interpreter, edge.classify, edge.model_meta; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_runtime_and_type() -> None:
    with pytest.raises(ModelError, match="unknown TFLite runtime"):
        load_interpreter_class("onnxruntime")
    with pytest.raises(ConfigError, match="valid: tflite"):
        create_classifier("onnx", "model.onnx")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        TFLiteClassifier(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError):
        TFLiteClassifier(junk)


@pytest.fixture(scope="module")
def faces(fer_slice_csv: Path) -> np.ndarray:
    """Real PublicTest faces from the slice."""
    from train.data.fer2013 import load_fer2013

    return load_fer2013(fer_slice_csv, "PublicTest").images[:40]


@pytest.fixture(scope="module")
def lstm_models(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path) -> dict[str, Path]:
    """A freshly initialized CNN-LSTM converted to int8 and float32, with metadata."""
    pytest.importorskip("tensorflow")
    import keras

    from convert.quantize import convert, quantization_summary
    from edge.contract import DEFAULT_CONTRACT
    from edge.model_meta import ModelMetadata, embed_metadata
    from train.data.fer2013 import load_fer2013
    from train.models import create_model

    keras.utils.set_random_seed(3)
    train = load_fer2013(fer_slice_csv, "Training").images[:16]
    model = create_model("bagga_cnn_lstm2", 7)
    from convert.rebuild import rebuild_tf_keras

    fixed = rebuild_tf_keras(model, "bagga_cnn_lstm2", 7, train)
    out = tmp_path_factory.mktemp("interp")
    paths: dict[str, Path] = {}
    for mode in ("int8", "float32"):
        data, info = convert(fixed, mode, train)
        meta = ModelMetadata(
            arch="bagga_cnn_lstm2",
            seed="002",
            labels=DEFAULT_CONTRACT.labels,
            input_shape=DEFAULT_CONTRACT.input_shape,
            contract=DEFAULT_CONTRACT,
            quantization=quantization_summary(info, mode, len(train)),
        )
        p = out / f"lstm_{mode}.tflite"
        p.write_bytes(embed_metadata(data, meta))
        paths[mode] = p
    paths["keras"] = out / "model.keras"
    model.save(paths["keras"])
    return paths


@pytest.mark.tf
@pytest.mark.slow
def test_int8_classifier_properties_and_probabilities(
    lstm_models: dict[str, Path], faces: np.ndarray
) -> None:
    clf = create_classifier("tflite", lstm_models["int8"], num_threads=2)
    assert isinstance(clf, TFLiteClassifier)
    assert clf.backend == "ai_edge_litert"
    assert clf.input_dtype == "int8"
    assert clf.input_quantization == (1.0, -128)  # 0..255 maps exactly onto int8
    assert clf.labels == clf.metadata.labels and len(clf.labels) == 7
    assert clf.input_size == 48
    assert len(clf.sha256) == 64
    p = clf.predict(faces)
    assert p.shape == (len(faces), 7) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=0.02)
    # (N, S, S, 1) and a single (S, S) face give the same answers.
    np.testing.assert_array_equal(clf.predict(faces[..., None]), p)
    np.testing.assert_array_equal(clf.predict(faces[3]), p[3:4])
    assert clf.predict(faces[:0]).shape == (0, 7)
    with pytest.raises(ValueError, match="expected faces"):
        clf.predict(np.zeros((2, 32, 32), np.uint8))


@pytest.mark.tf
@pytest.mark.slow
def test_lstm_state_is_reset_before_every_face(
    lstm_models: dict[str, Path], faces: np.ndarray
) -> None:
    clf = TFLiteClassifier(lstm_models["int8"])
    batch = clf.predict(faces)
    # Order must not matter: every face starts from the same LSTM state.
    rev = clf.predict(faces[::-1])[::-1]
    np.testing.assert_array_equal(batch, rev)
    np.testing.assert_array_equal(clf.predict(faces[5:6]), batch[5:6])
    # Without the reset the fused LSTM carries state from face to face and outputs drift
    # (shown on the float model: this untrained int8 model's saturated outputs hide it).
    fclf = TFLiteClassifier(lstm_models["float32"])
    with_reset = fclf.predict_raw(np.repeat(faces[:1], 6, axis=0), reset=True)
    without = fclf.predict_raw(np.repeat(faces[:1], 6, axis=0), reset=False)
    assert (with_reset == with_reset[0]).all()
    assert not (without == without[0]).all(), "LSTM state did not carry over without reset"


@pytest.mark.tf
@pytest.mark.slow
def test_float_model_matches_keras(lstm_models: dict[str, Path], faces: np.ndarray) -> None:
    import keras

    from edge.contract import to_model_input

    clf = TFLiteClassifier(lstm_models["float32"])
    assert clf.input_dtype == "float32"
    want = keras.models.load_model(lstm_models["keras"]).predict(to_model_input(faces), verbose=0)
    np.testing.assert_allclose(clf.predict(faces), want, atol=1e-4)


@pytest.mark.tf
@pytest.mark.slow
def test_tensorflow_fallback_runtime_gives_the_same_answers(
    lstm_models: dict[str, Path], faces: np.ndarray
) -> None:
    a = TFLiteClassifier(lstm_models["int8"])
    b = TFLiteClassifier(lstm_models["int8"], runtime="tensorflow")
    assert b.backend == "tensorflow"
    np.testing.assert_array_equal(a.predict(faces[:8]), b.predict(faces[:8]))


@pytest.mark.tf
@pytest.mark.slow
def test_truncated_real_model(lstm_models: dict[str, Path], tmp_path: Path) -> None:
    data = lstm_models["int8"].read_bytes()
    for n in (16, len(data) // 3, len(data) - 100):
        p = tmp_path / f"cut{n}.tflite"
        p.write_bytes(data[:n])
        with pytest.raises(ModelError):
            TFLiteClassifier(p)
