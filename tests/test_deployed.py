"""The classifier as deployed: test-time views, ensembles, calibration, and the commands that
evaluate and calibrate exactly what ``fer-edge run`` runs (real bundled models, real faces)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.classify import TFLiteClassifier
from edge.classify.deployed import (
    SHIFT_PX,
    TTA_VIEWS,
    DeployedClassifier,
    calibrate,
    open_classifier,
    open_configured,
    setting_key,
)
from edge.config import DEFAULT_MODELS, ModelConfig, default_model_path, load_config
from edge.errors import ConfigError, ModelError
from edge.model_meta import embed_metadata, read_metadata
from edge.testing.cli import run_module
from train.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)


@pytest.fixture(scope="module")
def faces(fer_slice_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """300 real PublicTest faces and their FER2013 labels."""
    from train.data.fer2013 import load_fer2013

    fs = load_fer2013(fer_slice_csv, "PublicTest")
    return fs.images, fs.labels


def _variant(tmp_path: Path, name: str, **changes: object) -> Path:
    """A copy of the bundled model with its metadata changed (labels, training, calibration)."""
    src = default_model_path()
    meta = read_metadata(src)
    if "labels" in changes:
        labels = tuple(changes.pop("labels"))  # type: ignore[arg-type]
        contract = dataclasses.replace(meta.contract, labels=labels)
        meta = dataclasses.replace(meta, labels=labels, contract=contract)
    meta = dataclasses.replace(meta, **changes)  # type: ignore[arg-type]
    out = tmp_path / name
    out.write_bytes(embed_metadata(src.read_bytes(), meta))
    return out


def test_views_are_the_crop_its_mirror_and_edge_filled_shifts() -> None:
    a = np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6)
    none, flip = TTA_VIEWS["none"], TTA_VIEWS["flip"]
    assert len(none) == 1 and np.array_equal(none[0](a), a)
    assert len(flip) == 2 and np.array_equal(flip[1](a), a[:, :, ::-1])
    views = TTA_VIEWS["flip_shift"]
    assert len(views) == 6
    right = views[2](a)  # content moves right by SHIFT_PX; the left border repeats column 0
    assert right.shape == a.shape
    assert np.array_equal(right[:, :, SHIFT_PX:], a[:, :, :-SHIFT_PX])
    assert np.array_equal(right[:, :, 0], a[:, :, 0])
    down = views[4](a)
    assert np.array_equal(down[:, SHIFT_PX:, :], a[:, :-SHIFT_PX, :])
    assert np.array_equal(down[:, 0, :], a[:, 0, :])


def test_deployed_outputs_are_exact_averages_of_the_members(faces) -> None:
    x, _ = faces
    x = x[:40]
    single = TFLiteClassifier(default_model_path())
    lstm = TFLiteClassifier(default_model_path("cnn_lstm"))
    p, p_flip = single.predict(x), single.predict(np.ascontiguousarray(x[:, :, ::-1]))

    none = open_configured(ModelConfig(tta="none", bundled="cnn"))
    assert np.allclose(none.predict(x), p, atol=1e-6)
    flip = open_configured(ModelConfig(tta="flip", bundled="cnn"))
    assert np.allclose(flip.predict(x), (p + p_flip) / 2, atol=1e-6)
    both = open_configured(ModelConfig(tta="none", ensemble=["cnn", "cnn_lstm"]))
    assert np.allclose(both.predict(x), (p + lstm.predict(x)) / 2, atol=1e-6)
    assert [m.metadata.arch for m in both.members] == [
        single.metadata.arch,
        lstm.metadata.arch,
    ]
    # Flipping changes some faces' probabilities: the view is really used.
    assert not np.allclose(p, p_flip, atol=1e-3)
    shift = open_configured(ModelConfig(tta="flip_shift", bundled="cnn")).predict(x)
    assert shift.shape == p.shape and np.allclose(shift.sum(axis=1), 1.0, atol=0.05)


def test_members_with_other_labels_are_refused_at_start_up(tmp_path: Path) -> None:
    labels = read_metadata(default_model_path()).labels
    swapped = _variant(tmp_path, "swapped.tflite", labels=(labels[1], labels[0], *labels[2:]))
    with pytest.raises(ModelError, match="disagree on labels") as e:
        open_classifier([default_model_path(), swapped])
    assert str(swapped) in str(e.value) and str(default_model_path()) in str(e.value)

    cfg = tmp_path / "ens.toml"
    cfg.write_text(f'[model]\nensemble = ["cnn", "{swapped}"]\n')
    proc = run_module("edge", "run", "--config", str(cfg), "--max-frames", "3")
    assert proc.returncode == 2, proc.stderr
    assert "disagree on labels" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""  # no event was published by a half-started pipeline


def test_model_config_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="tta"):
        load_config(None, {"model": {"tta": "rotate"}})
    with pytest.raises(ConfigError, match="either 'path' or 'ensemble'"):
        load_config(None, {"model": {"path": "a.tflite", "ensemble": ["cnn"]}})
    with pytest.raises(ConfigError, match="temperature"):
        load_config(None, {"model": {"temperature": 0}})
    missing = load_config(None, {"model": {"ensemble": ["cnn", "nope.tflite"]}}).model
    with pytest.raises(ModelError, match="nope.tflite"):
        open_configured(missing)


def test_validate_config_checks_every_ensemble_member(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nensemble = ["cnn", "missing-member.tflite"]\n')
    proc = run_module("edge", "validate-config", str(cfg), timeout=60)
    assert proc.returncode == 2
    assert "model.ensemble[1]" in proc.stderr and "missing-member.tflite" in proc.stderr


def test_temperature_is_used_only_for_the_setting_it_was_fitted_for(tmp_path: Path, faces) -> None:
    x, _ = faces
    x = x[:30]
    cal = {"method": "temperature", "temperature": 1.7, "setting": setting_key("flip", [])}
    path = _variant(tmp_path, "cal.tflite", calibration=cal)
    flip = open_classifier([path], tta="flip")
    assert flip.temperature == 1.7 and flip.describe()["calibration_source"] == "model metadata"
    raw = flip.predict_uncalibrated(x)
    assert np.allclose(flip.predict(x), calibrate(raw, 1.7), atol=1e-6)
    # Softer, same ranking: a positive temperature never changes the predicted class. (int8
    # outputs are multiples of 1/256 and need not sum to 1; calibration renormalises.)
    assert (flip.predict(x).max(axis=1) < (raw / raw.sum(axis=1, keepdims=True)).max(axis=1)).all()
    assert np.array_equal(flip.predict(x).argmax(axis=1), raw.argmax(axis=1))

    other_views = open_classifier([path], tta="none")
    assert other_views.temperature == 1.0 and not other_views.describe()["calibrated"]
    other_members = open_classifier([path, default_model_path()], tta="flip")
    assert other_members.temperature == 1.0
    forced = open_classifier([path], tta="none", temperature=0.5)
    assert forced.temperature == 0.5 and forced.describe()["calibration_source"] == "config"


def test_calibrate_is_softmax_of_scaled_log_probabilities() -> None:
    logits = np.array([[2.0, 1.0, -1.0], [0.1, 0.2, 3.0]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    t = 2.5
    want = np.exp(logits / t) / np.exp(logits / t).sum(axis=1, keepdims=True)
    assert np.allclose(calibrate(p, t), want, atol=1e-6)
    assert calibrate(p, 1.0) is p


def test_ece_and_reliability_bins_on_a_hand_made_case() -> None:
    # Four faces at confidence 0.9 (3 right) and two at 0.6 (both wrong).
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    bins = [b for b in reliability_bins(probs, labels) if b["n"]]
    assert [(b["n"], round(b["accuracy"], 3)) for b in bins] == [(2, 0.0), (4, 0.75)]
    want = (2 * abs(0.0 - 0.6) + 4 * abs(0.75 - 0.9)) / 6
    assert math.isclose(expected_calibration_error(probs, labels), want, rel_tol=1e-9)


def test_fitted_temperature_recovers_a_known_over_confidence() -> None:
    # Labels drawn from softmax(z); the "model" reports softmax(2 z): over-confident by T = 2.
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, size=(20000, 7))
    true_p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in true_p])
    reported = np.exp(2 * z) / np.exp(2 * z).sum(axis=1, keepdims=True)
    t = fit_temperature(reported, labels)
    assert 1.9 < t < 2.1
    assert nll(calibrate(reported, t), labels) < nll(reported, labels)
    assert expected_calibration_error(calibrate(reported, t), labels) < 0.5 * (
        expected_calibration_error(reported, labels)
    )


def test_info_json_shows_the_deployed_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[model]\ntta = "flip_shift"\nensemble = ["cnn", "cnn_lstm"]\ntemperature = 1.3\n'
    )
    proc = run_module("edge", "info", "--json", "--config", str(cfg), timeout=60)
    assert proc.returncode == 0, proc.stderr
    dep = json.loads(proc.stdout)["deployed"]
    assert dep["tta"] == "flip_shift" and dep["views"] == 6
    assert [m["path"] for m in dep["ensemble"]] == [
        str(default_model_path()),
        str(default_model_path("cnn_lstm")),
    ]
    assert dep["temperature"] == 1.3 and dep["calibration_source"] == "config"
    plain = run_module("edge", "info", "--json", timeout=60)
    default = json.loads(plain.stdout)["deployed"]
    assert default["tta"] == ModelConfig().tta
    assert [m["path"] for m in default["ensemble"]] == [
        str(default_model_path(m)) for m in DEFAULT_MODELS
    ]


def _fer_train(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("train", *args, timeout=300)


@pytest.mark.slow
def test_evaluate_deployed_scores_what_the_device_runs(
    fer_slice_csv: Path, tmp_path: Path, faces
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\ntta = "flip"\nensemble = ["cnn", "cnn_lstm"]\n')
    out = tmp_path / "eval"
    proc = _fer_train(
        "evaluate", "--deployed", "--config", str(cfg), "--data", str(fer_slice_csv),
        "--usage", "PublicTest", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    x, y = faces
    want = open_configured(load_config(cfg).model).predict(x)
    assert m["n"] == len(y)
    assert math.isclose(m["accuracy"], float((want.argmax(axis=1) == y).mean()), abs_tol=1e-9)
    assert math.isclose(m["ece"], expected_calibration_error(want, y), abs_tol=1e-6)
    assert m["ms_per_face"] > 0
    assert m["deployed"]["tta"] == "flip" and len(m["deployed"]["ensemble"]) == 2
    assert (out / "reliability.png").stat().st_size > 1000

    both = _fer_train("evaluate", str(default_model_path()), "--deployed", "--data",
                      str(fer_slice_csv), "--out", str(tmp_path / "x"))  # fmt: skip
    assert both.returncode == 2 and "drop one of them" in both.stderr


@pytest.mark.slow
def test_calibrate_fits_on_trainval_and_the_device_applies_it(
    fer_slice_csv: Path, tmp_path: Path
) -> None:
    # The bundled model trained on the TrainVal faces: calibrating it there is refused.
    refused = _fer_train(
        "calibrate", "--data", str(fer_slice_csv), "--out", str(tmp_path / "no.tflite")
    )
    assert refused.returncode == 2 and "--val-usage TrainVal" in refused.stderr
    assert not (tmp_path / "no.tflite").exists()

    # The same weights with a TrainVal-validated provenance exercise the real fit and write.
    meta = read_metadata(default_model_path())
    training = {**meta.training, "options": {**meta.training["options"], "val_usage": "TrainVal"}}
    held_out = _variant(tmp_path, "heldout.tflite", training=training)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[model]\npath = "{held_out}"\ntta = "flip"\n')
    out, report = tmp_path / "calibrated.tflite", tmp_path / "report"
    proc = _fer_train(
        "calibrate", "--config", str(cfg), "--data", str(fer_slice_csv), "--out", str(out),
        "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cal = read_metadata(out).calibration
    assert cal["setting"] == {"tta": "flip", "members": []}
    assert cal["fitted_on"]["usage"] == "TrainVal" and cal["fitted_on"]["n"] > 50
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9
    assert json.loads(out.with_suffix(".json").read_text())["calibration"] == cal
    assert (report / "reliability.png").stat().st_size > 1000
    deployed = open_classifier([out], tta="flip")
    assert deployed.temperature == pytest.approx(cal["temperature"])
    assert isinstance(deployed, DeployedClassifier) and deployed.describe()["calibrated"]


@pytest.mark.slow
def test_calibrate_against_ferplus_majority_labels(
    fer_csv: Path, ferplus_csv: Path, tmp_path: Path
) -> None:
    # A FERPlus-7 model's confidence is fitted to FERPlus majority labels: the TrainVal rows
    # without a 7-class majority drop out, so fewer faces than the 2,850 FER2013-labelled ones.
    meta = read_metadata(default_model_path())
    training = {**meta.training, "options": {**meta.training["options"], "val_usage": "TrainVal"}}
    held_out = _variant(tmp_path, "heldout.tflite", training=training)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[model]\npath = "{held_out}"\ntta = "none"\n')
    out = tmp_path / "fp.tflite"
    proc = _fer_train(
        "calibrate", "--config", str(cfg), "--data", str(fer_csv), "--labels", "ferplus",
        "--ferplus", str(ferplus_csv), "--ferplus-classes", "7", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cal = read_metadata(out).calibration
    assert cal["fitted_on"]["labels"] == "ferplus"
    assert 2000 < cal["fitted_on"]["n"] < 2850
    assert "labels=ferplus" in cal["fitted_on"]["source"]
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9

    # Eight FERPlus classes (with contempt) do not match the model's seven labels: refused.
    eight = _fer_train(
        "calibrate", "--config", str(cfg), "--data", str(fer_csv), "--labels", "ferplus",
        "--ferplus", str(ferplus_csv), "--out", str(tmp_path / "no.tflite"),
    )  # fmt: skip
    assert eight.returncode == 2 and "contempt" in eight.stderr
    assert not (tmp_path / "no.tflite").exists()
