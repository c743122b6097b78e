"""Evaluation: metrics with hand-computed answers, plots, ``fer-train evaluate`` / ``compare``
on a real (1-epoch) Keras model and real FER2013 rows, duplicate exclusion, bad input."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError, DataError, ModelError
from train.cli import main
from train.compare import comparison_markdown, parse_archs
from train.evaluate import write_json
from train.metrics import compute_metrics, json_safe, summary_line
from train.plots import plot_comparison, plot_confusion, plot_history, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Five samples, three classes. y_pred = argmax = [0, 1, 1, 2, 2].
Y = np.array([0, 0, 1, 1, 2])
P = np.array(
    [
        [0.9, 0.1, 0.0],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.3, 0.3, 0.4],
        [0.0, 0.1, 0.9],
    ]
)


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 2000, path


def test_compute_metrics_hand_computed() -> None:
    m = compute_metrics(Y, P, ["a", "b", "c"])
    # confusion rows = true, columns = predicted
    assert m["confusion"] == {
        "matrix": [[1, 1, 0], [0, 1, 1], [0, 0, 1]],
        "labels": ["a", "b", "c"],
    }
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    # a: P 1/1 R 1/2 F1 2/3; b: P 1/2 R 1/2 F1 1/2; c: P 1/2 R 1/1 F1 2/3
    pc = m["per_class"]
    assert (pc["a"]["precision"], pc["a"]["recall"]) == pytest.approx((1.0, 0.5))
    assert (pc["b"]["precision"], pc["b"]["recall"]) == pytest.approx((0.5, 0.5))
    assert (pc["c"]["precision"], pc["c"]["recall"]) == pytest.approx((0.5, 1.0))
    assert [pc[k]["f1"] for k in "abc"] == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert [pc[k]["support"] for k in "abc"] == [2, 2, 1]
    assert m["macro_precision"] == pytest.approx(2 / 3)
    assert m["macro_recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(11 / 18)
    assert m["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 1 / 2 + 1 * 2 / 3) / 5)
    # One-vs-rest AUC by counting ordered (positive, negative) pairs:
    # a: positives {.9,.2} vs {.1,.3,0} -> 5/6; b: {.8,.3} vs {.1,.7,.1} -> 5/6; c: 1.
    assert [pc[k]["auc"] for k in "abc"] == pytest.approx([5 / 6, 5 / 6, 1.0])
    assert m["auc_macro"] == pytest.approx(8 / 9)
    assert m["notes"] == [] and m["macro_over"] == ["a", "b", "c"]


def test_auc_with_missing_class_is_skipped_not_nan() -> None:
    y = np.array([0, 0, 1])
    p = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    m = compute_metrics(y, p, ["a", "b", "c"])
    assert m["per_class"]["c"] == {
        "precision": None, "recall": None, "f1": None, "support": 0, "auc": None
    }  # fmt: skip
    assert m["auc_macro"] == pytest.approx(1.0)  # a and b separate perfectly
    assert m["macro_over"] == ["a", "b"]
    assert m["macro_precision"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert any("c" in n and "absent" in n for n in m["notes"])
    json.dumps(m, allow_nan=False)  # raises on NaN/inf
    # Predicting the absent class: its precision is defined (0), its recall still is not.
    p2 = p.copy()
    p2[2] = [0.1, 0.2, 0.7]
    m2 = compute_metrics(y, p2, ["a", "b", "c"])
    assert m2["per_class"]["c"]["precision"] == 0.0 and m2["per_class"]["c"]["recall"] is None
    assert m2["per_class"]["b"]["precision"] == 0.0  # predicted once, wrongly
    assert m2["confusion"]["matrix"] == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert m2["macro_recall"] == pytest.approx((0.5 + 0.0) / 2)
    json.dumps(m2, allow_nan=False)


def test_single_class_has_no_auc() -> None:
    m = compute_metrics(np.zeros(4, dtype=int), np.tile([0.6, 0.4], (4, 1)), ["x", "y"])
    assert m["accuracy"] == 1.0
    assert m["auc_macro"] is None
    json.dumps(m, allow_nan=False)


def test_metrics_reject_bad_shapes() -> None:
    with pytest.raises(ModelError, match="4 classes.*3 labels"):
        compute_metrics(Y, np.full((5, 4), 0.25), ["a", "b", "c"])
    with pytest.raises(DataError, match="zero samples"):
        compute_metrics(np.zeros(0, dtype=int), np.zeros((0, 3)), ["a", "b", "c"])
    with pytest.raises(ModelError, match="non-finite"):
        compute_metrics(Y, np.where(P > 0.8, np.nan, P), ["a", "b", "c"])
    with pytest.raises(ValueError, match="outside"):
        compute_metrics(np.array([0, 0, 1, 1, 3]), P, ["a", "b", "c"])


def test_logits_become_probabilities_but_probabilities_stay() -> None:
    from train.predict import _as_probs

    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]], dtype=np.float32)
    p = _as_probs(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert p[0].argmax() == 0 and p[1] == pytest.approx([1 / 3] * 3)
    int8_like = np.array([[0.5, 0.25, 0.234375], [0.0, 0.99609375, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(_as_probs(int8_like), int8_like)


def test_json_safe_and_write_json(tmp_path: Path) -> None:
    obj = {"a": np.float32(0.5), "b": float("nan"), "c": np.arange(3), "d": (np.int64(2), math.inf)}
    assert json_safe(obj) == {"a": 0.5, "b": None, "c": [0, 1, 2], "d": [2, None]}
    write_json(tmp_path / "x.json", obj)
    assert json.loads((tmp_path / "x.json").read_text())["b"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


def test_summary_line() -> None:
    m = compute_metrics(Y, P, ["a", "b", "c"])
    assert summary_line(m) == "n=5 acc=0.6000 macro_f1=0.6111 weighted_f1=0.6000 macro_auc=0.8889"
    m["excluding_train_duplicates"] = dict(compute_metrics(Y[:3], P[:3], ["a", "b", "c"]))
    m["excluding_train_duplicates"]["n_excluded"] = 2
    assert "without 2 rows with a Training twin: n=3 acc=0.6667" in summary_line(m)


def test_plots_write_png(tmp_path: Path) -> None:
    m = compute_metrics(Y, P, ["a", "b", "c"])
    plot_confusion(m, tmp_path / "confusion.png")
    plot_roc(Y, P, ["a", "b", "c"], tmp_path / "roc.png")
    plot_roc(np.array([0, 0, 1]), P[:3], ["a", "b", "c"], tmp_path / "roc_missing.png")
    hist = {"loss": [1.9, 1.5, 1.3], "val_loss": [1.8, 1.6, 1.7], "accuracy": [0.3, 0.4, 0.5],
            "val_accuracy": [0.32, 0.41, 0.40]}  # fmt: skip
    plot_history(hist, tmp_path / "curves.png")
    with (tmp_path / "history.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"])
        for e in range(3):
            w.writerow([e, hist["accuracy"][e], 1e-3, hist["loss"][e], hist["val_accuracy"][e],
                        hist["val_loss"][e]])  # fmt: skip
    plot_history(tmp_path / "history.csv", tmp_path / "curves_csv.png")
    rows = [{"arch": "x", **{k: m[k] for k in ("accuracy", "macro_precision", "macro_recall",
            "macro_f1", "auc_macro")}}, {"arch": "y", "accuracy": 0.5, "macro_precision": 0.4,
            "macro_recall": 0.3, "macro_f1": 0.2, "auc_macro": None}]  # fmt: skip
    plot_comparison(rows, tmp_path / "cmp.png")
    for name in ("confusion", "roc", "roc_missing", "curves", "curves_csv", "cmp"):
        _assert_png(tmp_path / f"{name}.png")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_plot_history_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        plot_history(tmp_path / "missing.csv", tmp_path / "x.png")
    (tmp_path / "h.csv").write_text("epoch,lr\n0,0.001\n")
    with pytest.raises(DataError, match="no loss/accuracy"):
        plot_history(tmp_path / "h.csv", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_parse_archs_and_unknown_arch_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert parse_archs("bagga_cnn1, savitri_cnn,bagga_cnn1") == ("bagga_cnn1", "savitri_cnn")
    with pytest.raises(ConfigError, match="valid names: .*bagga_cnn1"):
        parse_archs("bagga_cnn1,resnet50")
    rc = main(["compare", "--archs", "nope", "--data", "x.csv", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown architecture nope" in err and "munsarif_res_bilstm" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_comparison_markdown_table() -> None:
    doc = {
        "protocol": {"data": "/d/fer.csv.gz", "split": "PublicTest", "labels": "fer2013",
                     "label_names": ["a", "b"], "n": 10, "exclude_duplicates": True,
                     "n_rows_with_train_twin": 2, "model_selection": "on PublicTest"},
        "rows": [
            {"arch": "m1", "kind": "cnn", "paper_seed": "002_x.txt", "params": 117031,
             "accuracy": 0.5, "macro_precision": 0.4, "macro_recall": 0.3, "macro_f1": 0.35,
             "auc_macro": None, "accuracy_without_train_twins": 0.45,
             "macro_f1_without_train_twins": 0.3, "train_seconds": 300.0, "epochs_run": 3,
             "seed": 42, "reused": True, "run_dir": "runs/m1", "train_limit": None},
            {"arch": "m2", "kind": "cnn_lstm", "paper_seed": "001_y.txt", "params": 5,
             "accuracy": 0.6, "macro_precision": 0.5, "macro_recall": 0.5, "macro_f1": 0.5,
             "auc_macro": 0.8, "accuracy_without_train_twins": 0.55,
             "macro_f1_without_train_twins": 0.45, "train_seconds": 12.0, "epochs_run": 1,
             "seed": 1, "reused": False, "run_dir": "runs/m2", "train_limit": 100},
        ],
    }  # fmt: skip
    md = comparison_markdown(doc)
    lines = md.splitlines()
    assert len([ln for ln in lines if ln.startswith("| `")]) == 2  # one row per model
    header = (
        "| architecture | kind | seed paper | params | accuracy | macro P | macro R | macro F1 "
        "| macro AUC | accuracy w/o twins | macro F1 w/o twins | train time | epochs | seed |"
    )
    assert header in lines
    assert "| `m1` | cnn | 002 | 117,031 | 0.5000 | 0.4000 | 0.3000 | 0.3500 | – | 0.4500 |" in md
    assert "| `m2` | cnn_lstm | 001 | 5 | **0.6000** |" in md
    assert "5.0 min" in md and "12 s" in md
    assert "without the 2 rows" in md
    assert "smoke runs (training images limited): m2" in md


# --------------------------------------------------------------------------------------------
# Real model, real data (TensorFlow)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path) -> Path:
    """bagga_cnn1 fitted for one epoch on the 1,200 real Training rows of the slice."""
    pytest.importorskip("tensorflow")
    import keras

    from train.data import load_fer2013
    from train.models import create_model

    train = load_fer2013(fer_slice_csv, "Training")
    keras.utils.set_random_seed(0)
    model = create_model("bagga_cnn1", num_classes=train.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train.images[..., None].astype("float32"), train.labels, epochs=1, batch_size=64,
              verbose=0)  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "bagga_cnn1.keras"
    model.save(path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.tf
def test_evaluate_cli_keras(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    rc, stdout, err = _run(capsys, "evaluate", str(keras_model), "--data", str(fer_slice_csv),
                           "--out", str(out))  # fmt: skip
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 300 and sum(m["per_class"][k]["support"] for k in m["labels"]) == 300
    for key in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall",
                "auc_macro", "per_class", "confusion"):  # fmt: skip
        assert key in m
    assert m["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert set(m["per_class"]["happy"]) == {"precision", "recall", "f1", "support", "auc"}
    assert np.asarray(m["confusion"]["matrix"]).sum() == 300
    assert m["model"]["arch"] == "bagga_cnn1" and m["model"]["params"] == 117_031
    assert m["usage"] == "PublicTest"
    assert stdout.strip().startswith("n=300 acc=") and stdout.count("\n") == 1
    _assert_png(out / "confusion.png")
    _assert_png(out / "roc.png")
    assert not list(tmp_path.glob(".*"))  # the temporary folder was renamed, not left behind


@pytest.mark.tf
def test_predict_probs_path_and_model_agree(keras_model: Path, fer_slice_csv: Path) -> None:
    from train.data import load_fer2013
    from train.predict import load_keras_model, predict_probs

    faces = load_fer2013(fer_slice_csv, "PublicTest").subset(np.arange(40))
    by_path = predict_probs(keras_model, faces.images, batch_size=16)
    by_model = predict_probs(load_keras_model(keras_model), faces.images, batch_size=40)
    assert by_path.shape == (40, 7)
    np.testing.assert_allclose(by_path.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(by_path, by_model, atol=1e-5)


@pytest.mark.tf
def test_evaluate_into_existing_folder_keeps_other_files(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "metrics.json").write_text('{"old": true}')
    (out / "confusion_excluding_train_duplicates.png").write_bytes(b"stale")
    rc, _, err = _run(capsys, "evaluate", str(keras_model), "--data", str(fer_slice_csv),
                      "--out", str(out))  # fmt: skip
    assert rc == 0, err
    assert (out / "config.json").read_text() == "{}"
    assert "old" not in json.loads((out / "metrics.json").read_text())
    assert not (out / "confusion_excluding_train_duplicates.png").exists()  # stale plot removed
    _assert_png(out / "roc.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.tf
def test_evaluate_bad_inputs_exit_2(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from train.models import create_model

    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    eight = tmp_path / "eight.keras"
    create_model("bagga_cnn1", num_classes=8).save(eight)
    no_pixels = tmp_path / "nopixels.csv"
    no_pixels.write_text("emotion,Usage\n0,PublicTest\n")
    data = str(fer_slice_csv)
    cases = [
        ((str(tmp_path / "missing.keras"), "--data", data), "does not exist"),
        ((str(garbage), "--data", data), "not a Keras .keras archive"),
        ((str(onnx), "--data", data), "unknown suffix '.onnx'"),
        ((str(eight), "--data", data), "outputs 8 classes but the data has 7 labels"),
        ((str(keras_model), "--data", data, "--usage", "PrivateTest"), "no rows with Usage"),
        ((str(keras_model), "--data", str(no_pixels)), "missing columns ['pixels']"),
        ((str(keras_model), "--data", str(tmp_path / "none.csv")), "not found"),
        ((str(keras_model), "--data", data, "--usage", "Training", "--exclude-duplicates"),
         "are Training rows"),
    ]  # fmt: skip
    for argv, message in cases:
        out = tmp_path / "out"
        rc, _, err = _run(capsys, "evaluate", *argv, "--out", str(out))
        assert rc == 2, (argv, err)
        assert message in err, (argv, err)
        assert err.startswith("fer-train: error:") and "Traceback" not in err
        assert not out.exists(), argv
        assert not list(tmp_path.glob(".out*")), argv


def _to_tflite(keras_path: Path, faces: np.ndarray, mode: str, out: Path) -> Path:
    """Convert through convert/'s own steps (tf_keras rebuild, builtin ops) + edge metadata."""
    from convert.quantize import convert
    from convert.rebuild import rebuild_tf_keras
    from edge.contract import DEFAULT_CONTRACT, FER2013_LABELS
    from edge.model_meta import ModelMetadata, embed_metadata
    from train.predict import load_keras_model

    twin = rebuild_tf_keras(load_keras_model(keras_path), "bagga_cnn1", 7, faces[:8])
    data, _ = convert(twin, mode, faces)
    meta = ModelMetadata(
        arch="bagga_cnn1",
        seed="002_8ee55e6a24b679ae.txt",
        labels=FER2013_LABELS,
        input_shape=DEFAULT_CONTRACT.input_shape,
        contract=DEFAULT_CONTRACT,
    )
    out.write_bytes(embed_metadata(data, meta))
    return out


@pytest.mark.tf
def test_tflite_float_matches_keras_through_edge_classifier(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path
) -> None:
    from train.data import load_fer2013
    from train.evaluate import evaluate_model
    from train.predict import open_model, predict_probs

    faces = load_fer2013(fer_slice_csv, "PublicTest")
    train = load_fer2013(fer_slice_csv, "Training")
    tfl = _to_tflite(keras_model, train.images[:64], "float32", tmp_path / "m.tflite")
    loaded = open_model(tfl)
    assert loaded.info["format"] == "tflite" and loaded.info["arch"] == "bagga_cnn1"
    assert type(loaded.handle).__name__ == "TFLiteClassifier"  # edge's device code path
    sub = faces.subset(np.arange(60))
    np.testing.assert_allclose(
        predict_probs(tfl, sub.images), predict_probs(keras_model, sub.images), atol=1e-4
    )
    mk = evaluate_model(keras_model, sub, tmp_path / "k")
    mt = evaluate_model(tfl, sub, tmp_path / "t")
    assert mt["confusion"] == mk["confusion"]
    assert mt["accuracy"] == mk["accuracy"]
    assert mt["model"]["format"] == "tflite" and mk["model"]["format"] == "keras"


@pytest.mark.tf
@pytest.mark.slow
def test_evaluate_cli_int8_tflite(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from train.data import load_fer2013

    train = load_fer2013(fer_slice_csv, "Training")
    tfl = _to_tflite(keras_model, train.images[:100], "int8", tmp_path / "m_int8.tflite")
    out = tmp_path / "eval"
    rc, stdout, err = _run(capsys, "evaluate", str(tfl), "--data", str(fer_slice_csv),
                           "--out", str(out))  # fmt: skip
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 300 and m["model"]["format"] == "tflite"
    assert m["model"]["arch"] == "bagga_cnn1" and m["model"]["params"] is None
    # Dequantized int8 outputs (sums off by a few 1/256 steps) are used as they are, not
    # pushed through another softmax.
    from train.predict import open_model, predict_probs

    lm = open_model(tfl)
    raw = np.asarray(lm.handle.predict(train.images[:20]), dtype=np.float32)
    np.testing.assert_array_equal(predict_probs(lm, train.images[:20]), raw)
    _assert_png(out / "roc.png")
    # The metadata's labels must match the data's: an 8-label evaluation is refused.
    rc, _, err = _run(capsys, "evaluate", str(tfl), "--data", str(fer_slice_csv), "--classes",
                      "angry,happy,sad,neutral", "--out", str(tmp_path / "x"))  # fmt: skip
    assert rc == 2 and "outputs 7 classes but the data has 4 labels" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_exclude_duplicates_counts_the_280_publictest_twins(
    keras_model: Path,
    fer_csv: Path,
    duplicates_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Independent answer from the shared duplicate index: PublicTest rows whose group also
    # holds a Training row.
    groups: dict[str, set[str]] = {}
    usage_of: dict[int, tuple[str, str]] = {}
    with duplicates_csv.open() as f:
        for r in csv.DictReader(f):
            groups.setdefault(r["group"], set()).add(r["Usage"])
            usage_of[int(r["row"])] = (r["Usage"], r["group"])
    expected = sorted(
        row for row, (u, g) in usage_of.items() if u == "PublicTest" and "Training" in groups[g]
    )
    assert len(expected) == 280

    from train.data import load_fer2013
    from train.evaluate import train_twin_rows

    public = load_fer2013(fer_csv, "PublicTest")
    assert train_twin_rows(fer_csv, public).tolist() == expected

    out = tmp_path / "eval"
    rc, stdout, err = _run(capsys, "evaluate", str(keras_model), "--data", str(fer_csv),
                           "--exclude-duplicates", "--out", str(out))  # fmt: skip
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    sub = m["excluding_train_duplicates"]
    assert m["n"] == 3589
    assert (sub["n"], sub["n_excluded"], sub["n_total"]) == (3309, 280, 3589)
    assert np.asarray(sub["confusion"]["matrix"]).sum() == 3309
    assert "without 280 rows with a Training twin: n=3309" in stdout
    _assert_png(out / "confusion_excluding_train_duplicates.png")


@pytest.mark.tf
@pytest.mark.slow
def test_compare_reuses_and_trains(
    keras_model: Path, fer_slice_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    reused = runs / "bagga_cnn1"
    reused.mkdir(parents=True)
    shutil.copy(keras_model, reused / "model.keras")
    (reused / "metrics.json").write_text(json.dumps({"accuracy": 0.1, "train_seconds": 7.0}))
    out = tmp_path / "cmp"
    rc, stdout, err = _run(
        capsys, "compare", "--archs", "bagga_cnn1,savitri_cnn", "--data", str(fer_slice_csv),
        "--runs-dir", str(runs), "--epochs", "1", "--limit", "200", "--batch", "32",
        "--out", str(out),
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads((out / "comparison.json").read_text())
    rows = {r["arch"]: r for r in doc["rows"]}
    assert list(rows) == ["bagga_cnn1", "savitri_cnn"]
    assert rows["bagga_cnn1"]["reused"] is True and rows["bagga_cnn1"]["train_seconds"] == 7.0
    assert rows["savitri_cnn"]["reused"] is False
    assert (runs / "savitri_cnn" / "model.keras").exists()
    for r in rows.values():
        assert r["n"] == 300 == doc["protocol"]["n"]
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "params", "kind"):
            assert r[key] is not None, key
    assert rows["bagga_cnn1"]["params"] == 117_031
    md = (out / "comparison.md").read_text()
    assert "`bagga_cnn1`" in md and "`savitri_cnn`" in md
    _assert_png(out / "comparison.png")
    assert (out / "eval" / "savitri_cnn" / "metrics.json").exists()
    assert "comparison.md" in stdout
