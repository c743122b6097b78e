"""fer-convert on real (tiny-trained) models and real FER2013 faces.

Module-scoped fixtures train each model once (a few hundred steps on the 1,200-row Training
slice) and run each conversion once; the tests then inspect the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tf

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from convert.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _train(arch: str, csv: Path, out: Path, epochs: int) -> Path:
    """Train ``arch`` briefly on the slice's Training rows; write a run folder like fer-train."""
    import keras

    from train.data.fer2013 import load_fer2013
    from train.models import create_model

    tr = load_fer2013(csv, "Training")
    keras.utils.set_random_seed(0)
    model = create_model(arch, 7)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(
        tr.images[..., None].astype("float32"), tr.labels, epochs=epochs, batch_size=32, verbose=0
    )
    out.mkdir(parents=True)
    model.save(out / "model.keras")
    config = {
        "arch": arch,
        "labels": list(tr.label_names),
        "options": {"labels": "fer2013", "seed": 0, "val_usage": "PublicTest"},
        "data": {"train_rows": len(tr), "train_source": tr.source},
        "command": f"fer-train train --arch {arch} (test)",
        "commit": "test-commit",
    }
    (out / "config.json").write_text(json.dumps(config))
    (out / "metrics.json").write_text(json.dumps({"n": 300, "accuracy": 0.3, "macro_f1": 0.1}))
    return out / "model.keras"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def trained(workdir: Path, fer_slice_csv: Path) -> dict[str, Path]:
    """bagga_cnn1 (~230 steps) and bagga_cnn_lstm2 (~150 steps) trained on real faces."""
    return {
        "bagga_cnn1": _train("bagga_cnn1", fer_slice_csv, workdir / "cnn1", epochs=6),
        "bagga_cnn_lstm2": _train("bagga_cnn_lstm2", fer_slice_csv, workdir / "lstm2", epochs=4),
    }


@pytest.fixture(scope="module")
def converted(
    trained: dict[str, Path], workdir: Path, fer_slice_csv: Path
) -> dict[str, dict[str, Any]]:
    """Each trained model converted to int8 once through the CLI."""
    import contextlib
    import io

    from convert.cli import main

    res: dict[str, dict[str, Any]] = {}
    for arch, model in trained.items():
        out = workdir / "out" / arch / f"{arch}.tflite"
        out.parent.mkdir(parents=True)
        report = workdir / "reports" / arch
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            # The gate is tested separately; these tiny models may legitimately move >1 point.
            rc = main([str(model), "--data", str(fer_slice_csv), "-o", str(out),
                       "--representative", "16", "--max-drop", "100", "--report", str(report)])  # fmt: skip
        res[arch] = {
            "rc": rc,
            "stdout": buf.getvalue(),
            "out": out,
            "report": report,
            "model": model,
        }
    return res


@pytest.fixture(scope="module")
def public_faces(fer_slice_csv: Path) -> Any:
    from train.data.fer2013 import load_fer2013

    return load_fer2013(fer_slice_csv, "PublicTest")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bagga_cnn1", "bagga_cnn_lstm2"])
def test_cli_writes_model_metadata_json_and_report(arch: str, converted: dict[str, Any]) -> None:
    from edge.model_meta import file_sha256, read_metadata, read_tflite_info

    r = converted[arch]
    assert r["rc"] == 0
    lines = r["stdout"].strip().splitlines()
    assert len(lines) == 1, "stdout must be exactly one JSON object"
    report = json.loads(lines[0])
    for key in ("float_accuracy", "converted_accuracy", "drop_pp", "top1_agreement",
                "mean_abs_prob_diff", "max_abs_prob_diff", "n"):  # fmt: skip
        assert key in report
    assert report["n"] == 300 and report["split"] == "PublicTest"
    assert json.loads((r["report"] / "parity.json").read_text()) == report

    out: Path = r["out"]
    meta = read_metadata(out)
    assert meta.arch == arch and meta.seed.startswith("002_")
    assert meta.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert meta.input_shape == (48, 48, 1)
    assert meta.parity == report
    assert meta.quantization["mode"] == "int8"
    assert meta.quantization["input"]["dtype"] == "int8"
    assert meta.quantization["output"]["dtype"] == "int8"
    assert meta.quantization["representative_images"] == 16
    assert meta.training["command"] == f"fer-train train --arch {arch} (test)"
    assert meta.training["commit"] == "test-commit"
    assert meta.training["convert"]["command"].startswith("fer-convert ")
    assert meta.metrics["accuracy"] == 0.3
    assert meta.created.endswith("+00:00")

    info = read_tflite_info(out)
    assert list(info.op_names) == meta.quantization["ops"]
    assert info.custom_ops == ()
    assert (LSTM in info.op_names) == (arch == "bagga_cnn_lstm2")

    side = json.loads(out.with_suffix(".json").read_text())
    assert side["sha256"] == file_sha256(out)
    assert side["bytes"] == out.stat().st_size
    assert {k: v for k, v in side.items() if k not in ("sha256", "file", "bytes")} == meta.to_dict()
    # Only the two outputs: the temporary folder is gone.
    assert sorted(p.name for p in out.parent.iterdir()) == [f"{arch}.json", f"{arch}.tflite"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bagga_cnn1", "bagga_cnn_lstm2"])
def test_int8_model_agrees_with_keras_on_real_faces(
    arch: str, converted: dict[str, Any], public_faces: Any
) -> None:
    import keras

    from edge.classify import TFLiteClassifier
    from edge.contract import to_model_input

    r = converted[arch]
    clf = TFLiteClassifier(r["out"])
    assert clf.backend == "ai_edge_litert"
    p_tfl = clf.predict(public_faces.images)
    p_keras = keras.models.load_model(r["model"]).predict(
        to_model_input(public_faces.images), verbose=0
    )
    agreement = float(np.mean(p_tfl.argmax(1) == p_keras.argmax(1)))
    assert agreement >= 0.9, f"{arch}: int8 argmax agrees with Keras on only {agreement:.1%}"
    assert float(np.abs(p_tfl - p_keras).mean()) < 0.05


@pytest.mark.slow
def test_parity_gate_failure_exits_3_and_writes_no_model(
    trained: dict[str, Path], workdir: Path, fer_slice_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = workdir / "gate"
    out_dir.mkdir()
    out = out_dir / "m.tflite"
    rc, stdout, err = _run(
        [str(trained["bagga_cnn1"]), "--data", str(fer_slice_csv), "-o", str(out),
         "--representative", "8", "--max-drop", "-100", "--report", str(workdir / "gate_report")],
        capsys,
    )  # fmt: skip
    assert rc == 3
    assert "--max-drop allows -100" in err
    assert list(out_dir.iterdir()) == [], "a failed gate must leave nothing in the output folder"
    report = json.loads(stdout.strip())
    assert report["passed"] is False
    assert json.loads((workdir / "gate_report" / "parity.json").read_text()) == report


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic"])
def test_other_quantization_modes(
    mode: str,
    trained: dict[str, Path],
    workdir: Path,
    fer_slice_csv: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edge.classify import TFLiteClassifier
    from edge.model_meta import read_tflite_info

    out = workdir / f"mode_{mode}.tflite"
    rc, stdout, err = _run(
        [str(trained["bagga_cnn_lstm2"]), "--data", str(fer_slice_csv), "-o", str(out),
         "--quantize", mode, "--max-drop", "100"],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["quantization"] == mode
    assert report["top1_agreement"] >= 0.95
    clf = TFLiteClassifier(out)
    assert clf.input_dtype == "float32"
    assert clf.metadata.quantization["mode"] == mode
    info = read_tflite_info(out)
    assert info.custom_ops == ()
    assert LSTM in info.op_names
    if mode == "dynamic":
        # Per-tensor dense weights keep FULLY_CONNECTED loadable in tflite-runtime 2.14.
        assert clf.metadata.quantization["op_versions"]["FULLY_CONNECTED"] <= 11


# ----------------------------------------------------------------------------------------------
# Every registry architecture converts (freshly initialized, tiny representative set)
# ----------------------------------------------------------------------------------------------


def _arch_names() -> list[str]:
    from train.models import list_models

    return list_models()


@pytest.mark.slow
@pytest.mark.parametrize("arch", _arch_names())
def test_every_architecture_converts_to_int8_builtins(
    arch: str, fer_slice_csv: Path, tmp_path: Path
) -> None:
    import keras

    from convert.quantize import convert, quantization_summary
    from convert.rebuild import rebuild_tf_keras
    from edge.classify import TFLiteClassifier
    from edge.contract import DEFAULT_CONTRACT
    from edge.model_meta import ModelMetadata, embed_metadata
    from train.data.fer2013 import load_fer2013
    from train.models import create_model, get_spec

    faces = load_fer2013(fer_slice_csv, "Training").images[:8]
    keras.utils.set_random_seed(1)
    model = create_model(arch, 7)
    fixed = rebuild_tf_keras(model, arch, 7, faces)
    data, info = convert(fixed, "int8", faces)
    assert info.custom_ops == ()
    assert not any("Flex" in n for n in info.op_names)
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert info.inputs[0].shape == (1, 48, 48, 1) and info.outputs[0].shape == (1, 7)
    summary = quantization_summary(info, "int8", len(faces))
    assert summary["ops"] == list(info.op_names) and summary["ops"]
    n_lstm = info.op_sequence.count(LSTM)
    if get_spec(arch).kind == "cnn_lstm":
        assert n_lstm >= 1, f"{arch}: LSTM was not fused ({info.op_names})"
    if arch == "munsarif_res_bilstm":
        assert n_lstm == 2, "a Bi-LSTM becomes two fused LSTMs"
    # The result runs on the device code path.
    meta = ModelMetadata(
        arch=arch,
        seed=get_spec(arch).seed,
        labels=DEFAULT_CONTRACT.labels,
        input_shape=DEFAULT_CONTRACT.input_shape,
        contract=DEFAULT_CONTRACT,
        quantization=summary,
    )
    path = tmp_path / f"{arch}.tflite"
    path.write_bytes(embed_metadata(data, meta))
    probs = TFLiteClassifier(path).predict(faces[:2])
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.03)


# ----------------------------------------------------------------------------------------------
# Bad input: exit 2, clear message, nothing written
# ----------------------------------------------------------------------------------------------


def _save_plain_model(path: Path, side: int, name: str) -> Path:
    import keras

    inp = keras.Input((side, side, 1))
    x = keras.layers.Flatten()(inp)
    out = keras.layers.Dense(7, activation="softmax")(x)
    keras.Model(inp, out, name=name).save(path)
    return path


@pytest.fixture(scope="module")
def bad_inputs(workdir: Path, fer_slice_csv: Path) -> dict[str, Path]:
    d = workdir / "bad"
    d.mkdir()
    lines = fer_slice_csv.read_text().splitlines(keepends=True)
    no_train = d / "public-only.csv"
    no_train.write_text(
        lines[0] + "".join(x for x in lines[1:] if x.rstrip().endswith("PublicTest"))
    )
    return {
        "big": _save_plain_model(d / "big.keras", 64, "bagga_cnn1"),
        "unknown": _save_plain_model(d / "unknown.keras", 48, "mystery_net"),
        "no_train": no_train,
    }


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_model", "does not exist"),
        ("missing_dir", "does not exist; create it first"),
        ("not_48", "48x48"),
        ("unknown_arch", "not a known architecture"),
        ("no_training_rows", "Training"),
        ("bad_suffix", "must end in .tflite"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    case: str,
    message: str,
    bad_inputs: dict[str, Path],
    trained: dict[str, Path],
    fer_slice_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, data, out = trained["bagga_cnn1"], fer_slice_csv, tmp_path / "m.tflite"
    if case == "missing_model":
        model = tmp_path / "nope.keras"
    elif case == "missing_dir":
        out = tmp_path / "no" / "such" / "m.tflite"
    elif case == "not_48":
        model = bad_inputs["big"]
    elif case == "unknown_arch":
        model = bad_inputs["unknown"]
    elif case == "no_training_rows":
        data = bad_inputs["no_train"]
    elif case == "bad_suffix":
        out = tmp_path / "m.bin"
    rc, stdout, err = _run(
        [str(model), "--data", str(data), "-o", str(out), "--representative", "8"], capsys
    )
    assert rc == 2
    assert message in err
    assert "Traceback" not in err
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []
