"""Smoke training on real FER2013 images: run folder, resume, bad input. No accuracy asserts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

from train.cli import main  # noqa: E402


def _train(args: list[str]) -> int:
    return main(["train", *args])


def test_smoke_train_and_resume(tmp_path: Path, fer_slice_csv: Path) -> None:
    run = tmp_path / "run"
    base = [
        "--arch",
        "bagga_cnn1",
        "--data",
        str(fer_slice_csv),
        "--batch",
        "64",
        "--out",
        str(run),
    ]
    assert _train([*base, "--epochs", "1"]) == 0
    for name in ("model.keras", "config.json", "history.csv", "metrics.json", "learning_curves.png", "confusion.png", "roc.png"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "complete" and cfg["arch"] == "bagga_cnn1"
    assert cfg["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert cfg["data"]["train_rows"] + cfg["data"]["dedup"]["within_train_removed"] <= 1200
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 300 and 0.0 <= metrics["accuracy"] <= 1.0
    # A finished run is not overwritten...
    assert _train([*base, "--epochs", "1"]) == 2
    # ...but --resume continues from the last epoch.
    assert _train([*base, "--epochs", "2", "--resume"]) == 0
    with (run / "history.csv").open() as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [0, 1]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["command"].startswith("fer-train train --arch bagga_cnn1 --data ")
    assert "--resume" not in cfg["command"] and len(cfg["resumed_with"]) == 1
    assert cfg["resumed_with"][0].endswith("--epochs 2 --resume")


def test_oversample_and_lstm_smoke(tmp_path: Path, fer_slice_csv: Path) -> None:
    run = tmp_path / "lstm"
    rc = _train(["--arch", "bagga_cnn_lstm2", "--data", str(fer_slice_csv), "--epochs", "1", "--limit", "400", "--oversample", "--no-augment", "--out", str(run)])  # fmt: skip
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    over = cfg["data"]["train_classes_oversampled"]
    assert len(set(over.values())) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "nope"], "valid names: bagga_cnn1"),
        (["--arch", "bagga_cnn1", "--data", "/no/such.csv"], "file not found"),
        (
            ["--arch", "bagga_cnn1", "--val-usage", "PrivateTest"],
            "no rows with Usage ['PrivateTest']",
        ),
        (["--arch", "bagga_cnn1", "--classes", "joy,happy"], "unknown classes ['joy']"),
        (["--arch", "bagga_cnn1", "--ferplus-mix", "0.5"], "--ferplus-mix needs --ferplus"),
        (["--arch", "bagga_cnn1", "--ferplus-mix", "1.5"], "must be between 0 and 1"),
    ],
)
def test_bad_input_exit_2_nothing_left(
    tmp_path: Path,
    fer_slice_csv: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    run = tmp_path / "bad"
    full = ["--data", str(fer_slice_csv), "--epochs", "1", "--out", str(run), *args]
    assert _train(full) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run.exists()


def test_seed002_leaky_protocol_counts_its_leak(tmp_path: Path, fer_slice_csv: Path) -> None:
    """Oversampling before the split puts copies of training images into the test split."""
    run = tmp_path / "leaky"
    rc = _train(["--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--protocol", "seed002-leaky", "--epochs", "1", "--no-augment", "--out", str(run)])  # fmt: skip
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    data = cfg["data"]
    assert data["pool_rows"] == 1500 and data["oversampled_rows"] > 1500
    assert data["train_rows"] + data["val_rows"] == data["oversampled_rows"]
    assert data["test_rows_seen_in_training"] > 0
    assert cfg["protocol"].startswith("seed002-leaky")
    metrics = json.loads((run / "metrics.json").read_text())
    unseen = metrics["excluding_train_duplicates"]
    assert unseen["n"] + unseen["n_excluded"] == metrics["n"] == data["val_rows"]
    assert unseen["n_excluded"] == data["test_rows_seen_in_training"]


def test_cosine_lr_curve() -> None:
    from train.fit import cosine_lr

    assert cosine_lr(0, 1e-3, 10) == pytest.approx(1e-3)
    assert cosine_lr(5, 1e-3, 10) == pytest.approx(5e-4)
    assert cosine_lr(10, 1e-3, 10) == pytest.approx(0.0, abs=1e-12)
    lrs = [cosine_lr(e, 1e-3, 10) for e in range(11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


def test_warm_restart_cosine_erasing(tmp_path: Path, fer_slice_csv: Path) -> None:
    """A second cycle starts from a finished run's weights and records where they came from."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--limit", "300", "--batch", "64"]  # fmt: skip
    assert _train([*common, "--epochs", "1", "--out", str(first)]) == 0
    rc = _train([*common, "--epochs", "2", "--schedule", "cosine", "--lr", "4e-4", "--erasing", "0.5", "--init-from", str(first / "model.keras"), "--out", str(second)])  # fmt: skip
    assert rc == 0
    cfg = json.loads((second / "config.json").read_text())
    init = cfg["init_from"]
    assert init["path"] == str(first / "model.keras") and len(init["sha256"]) == 64
    assert init["parent"]["command"].startswith("fer-train train --arch bagga_cnn1")
    assert cfg["options"]["schedule"] == "cosine" and cfg["options"]["augment"]["erasing"] == 0.5
    with (second / "history.csv").open() as f:
        lrs = [float(r["learning_rate"]) for r in csv.DictReader(f)]
    assert lrs == pytest.approx([4e-4, 2e-4], rel=1e-5)


def test_state_keeps_training_time_across_a_kill(tmp_path: Path) -> None:
    """A run killed between epochs keeps the seconds it trained so far in state.json, so that a
    later ``--resume`` reports the whole training time (it used to restart the clock at 0)."""
    import keras

    from train.fit import make_callbacks
    from train.options import TrainOptions

    run = tmp_path / "run"
    run.mkdir()
    opts = TrainOptions(arch="bagga_cnn1", data="unused.csv", out=str(run))
    killed = {"epoch": 2, "best": 0.4, "es_wait": 0, "lr_wait": 0, "lr": 1e-3, "stopped": False, "train_seconds": 500.0}  # fmt: skip
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    save = make_callbacks(run, opts, killed)[-1]
    save.set_model(model)
    save.on_train_begin()
    save.on_epoch_end(3)
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 3 and state["stopped"] is False
    assert 500.0 <= state["train_seconds"] < 560.0
    assert (run / "last.keras").stat().st_size > 0


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_teacher_targets_are_the_teachers_output_on_the_same_batch(temperature: float) -> None:
    """With --teacher-mix W the targets are (1-W) * one-hot + W * teacher(batch) (softened by T)."""
    import keras
    import numpy as np

    from train.data.augment import NONE
    from train.data.faceset import FaceSet
    from train.fit import make_dataset
    from train.options import TrainOptions

    rng = np.random.default_rng(0)
    fs = FaceSet(
        images=rng.integers(0, 256, (6, 48, 48), dtype=np.uint8),
        labels=np.array([0, 1, 2, 3, 4, 5]),
        rows=np.arange(6),
        label_names=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    )
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])  # fmt: skip
    opts = TrainOptions(arch="bagga_cnn1", data="x", out="x", batch=6, augment=NONE, teacher=["t.keras"], teacher_mix=0.75, teacher_temperature=temperature)  # fmt: skip
    xb, yb = next(iter(make_dataset(fs, opts, training=True, teacher=teacher)))
    probs = teacher.predict(xb.numpy(), verbose=0)
    soft = np.exp(np.log(probs + 1e-8) / temperature)
    soft /= soft.sum(axis=1, keepdims=True)
    onehot = np.eye(7)[fs.labels]
    # The shuffle reorders rows: match each target to its image through the teacher's output.
    order = [int(np.argmin(np.abs(fs.images.reshape(6, -1) - xb.numpy()[i].reshape(-1)).sum(1))) for i in range(6)]  # fmt: skip
    expected = 0.25 * onehot[order] + 0.75 * soft
    assert np.allclose(yb.numpy(), expected, atol=1e-5)
    assert not np.allclose(yb.numpy(), onehot[order], atol=1e-3)


def test_class_weights_follow_rarity_and_reach_keras_as_sample_weights(
    tmp_path: Path, fer_slice_csv: Path
) -> None:
    """--class-weight: a rare class's faces weigh more (sqrt or fully), the mean weight is 1,
    and the training dataset hands Keras (faces, targets, weights); validation stays unweighted."""
    import numpy as np

    from train.data.augment import NONE
    from train.data.faceset import FaceSet
    from train.fit import class_weights, make_dataset
    from train.options import TrainOptions

    labels = np.array([3] * 8 + [1] * 2)  # 8 happy, 2 disgust
    sq, bal = class_weights(labels, 7, "sqrt"), class_weights(labels, 7, "balanced")
    assert np.allclose(class_weights(labels, 7, "none"), 1.0)
    assert np.isclose(sq.mean(), 1.0) and np.isclose(bal.mean(), 1.0)
    assert np.isclose(sq[-1] / sq[0], 2.0) and np.isclose(bal[-1] / bal[0], 4.0)
    fs = FaceSet(
        images=np.zeros((10, 48, 48), np.uint8) + labels[:, None, None].astype(np.uint8),
        labels=labels,
        rows=np.arange(10),
        label_names=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    )
    opts = TrainOptions(arch="bagga_cnn1", data="x", out="x", batch=10, augment=NONE, class_weight="balanced")  # fmt: skip
    xb, yb, wb = next(iter(make_dataset(fs, opts, training=True)))
    # Each face's weight belongs to its own class (the shuffle keeps the triples together).
    assert np.allclose(wb.numpy(), bal[yb.numpy().argmax(1) == 3][0] * (yb.numpy().argmax(1) == 3) + bal[-1] * (yb.numpy().argmax(1) == 1))  # fmt: skip
    assert len(next(iter(make_dataset(fs, opts, training=False)))) == 2
    run = tmp_path / "cw"
    rc = _train(["--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--epochs", "1", "--limit", "300", "--class-weight", "sqrt", "--no-augment", "--out", str(run)])  # fmt: skip
    assert rc == 0
    assert json.loads((run / "config.json").read_text())["options"]["class_weight"] == "sqrt"


def test_distillation_run_records_its_teacher(tmp_path: Path, fer_slice_csv: Path) -> None:
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    common = ["--data", str(fer_slice_csv), "--limit", "300", "--epochs", "1"]
    assert _train(["--arch", "bagga_cnn1", *common, "--out", str(teacher)]) == 0
    rc = _train(["--arch", "bagga_cnn_lstm2", *common, "--teacher", str(teacher / "model.keras"), "--teacher-mix", "0.6", "--teacher-temperature", "2", "--out", str(student)])  # fmt: skip
    assert rc == 0
    cfg = json.loads((student / "config.json").read_text())
    t = cfg["teacher"]["models"][0]
    assert t["path"] == str(teacher / "model.keras") and len(t["sha256"]) == 64
    assert cfg["teacher"]["mix"] == 0.6 and cfg["teacher"]["temperature"] == 2.0
    assert t["parent"]["arch"] == "bagga_cnn1"
    assert "--teacher-mix 0.6" in cfg["command"]


def test_distillation_from_deployed_tflite_teachers_with_flips(
    tmp_path: Path, fer_slice_csv: Path
) -> None:
    """Two int8 teachers through the device's own code path, each also on the mirrored batch."""
    import numpy as np

    from edge.classify.deployed import open_classifier
    from edge.config import default_model_path
    from train.teachers import load_teachers

    bundled = [str(default_model_path("cnn")), str(default_model_path("cnn_lstm"))]
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    teachers = load_teachers(bundled, "flip", labels, "PublicTest")
    assert teachers.count == 2
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(5, 48, 48, 1)).astype(np.float32)
    want = open_classifier(bundled, tta="flip").predict_uncalibrated(batch[..., 0].astype(np.uint8))
    assert np.allclose(np.asarray(teachers(batch)), want, atol=1e-6)

    student = tmp_path / "student"
    common = ["--data", str(fer_slice_csv), "--limit", "300", "--epochs", "1"]
    teach = ["--teacher", bundled[0], "--teacher", bundled[1], "--teacher-tta", "flip"]
    assert _train(["--arch", "bagga_cnn1", *common, *teach, "--out", str(student)]) == 0
    cfg = json.loads((student / "config.json").read_text())["teacher"]
    assert cfg["tta"] == "flip" and [m["path"] for m in cfg["models"]] == bundled
    assert all(len(m["sha256"]) == 64 for m in cfg["models"])

    # The bundled models trained on TrainVal's faces: a student selected there may not use them.
    refused = tmp_path / "refused"
    rc = _train(["--arch", "bagga_cnn1", *common, "--val-usage", "TrainVal", *teach, "--out", str(refused)])  # fmt: skip
    assert rc == 2 and not refused.exists()


@pytest.mark.parametrize(
    ("option", "case", "message"),
    [
        ("--init-from", "missing", "no such file"),
        ("--init-from", "other_arch", "do not fit --arch bagga_cnn_lstm2"),
        ("--teacher", "missing", "--teacher"),
        ("--teacher", "leaky", "only leak-free runs"),
        ("--teacher", "labels", "differ from"),
        ("--teacher", "mix", "--teacher-mix 0.0"),
        ("--teacher", "corrupt", "not a Keras .keras archive"),
    ],
)
def test_bad_parent_checkpoint_exit_2_nothing_left(
    tmp_path: Path,
    fer_slice_csv: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    case: str,
    message: str,
) -> None:
    """A warm start (--init-from) or a teacher that cannot be used: exit 2, no run folder."""
    src = tmp_path / "src"
    common = ["--data", str(fer_slice_csv), "--limit", "200", "--epochs", "1"]
    extra = {"leaky": ["--protocol", "seed002-leaky"], "labels": ["--classes", "angry,happy,neutral,sad"]}  # fmt: skip
    if case != "missing":
        assert (
            _train(["--arch", "bagga_cnn1", *common, *extra.get(case, []), "--out", str(src)]) == 0
        )
    if case == "corrupt":  # a finished run whose checkpoint is no longer a model
        (src / "model.keras").write_bytes(b"not a model")
    capsys.readouterr()
    run = tmp_path / "bad"
    mix = ["--teacher-mix", "0"] if case == "mix" else []
    rc = _train(["--arch", "bagga_cnn_lstm2", *common, option, str(src / "model.keras"), *mix, "--out", str(run)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run.exists()
