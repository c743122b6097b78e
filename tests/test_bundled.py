"""The bundled models: present, self-describing, loadable without TensorFlow, selectable by
one config key (``[model] bundled``) or by name with ``--model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.classify.interpreter import TFLiteClassifier
from edge.cli import _model_override
from edge.config import BUNDLED_MODELS, DEFAULT_MODELS, default_model_path, load_config
from edge.contract import FER2013_LABELS
from edge.errors import ConfigError
from edge.model_meta import file_sha256, read_metadata


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_is_self_describing(name: str, fer_slice_csv: Path) -> None:
    path = default_model_path(name)
    assert path.is_file(), f"bundled model {name} missing at {path}"
    meta = read_metadata(path)
    assert meta.labels == FER2013_LABELS
    assert meta.input_shape[-3:] == (48, 48, 1)
    assert meta.quantization["mode"] == "int8"
    assert meta.parity.get("passed") is True
    sidecar = path.with_suffix(".json")
    assert sidecar.is_file() and file_sha256(path) in sidecar.read_text()
    import csv

    with open(fer_slice_csv) as f:
        rows = [r for r in csv.DictReader(f) if r["Usage"] == "PublicTest"][:16]
    faces = np.stack([np.array(r["pixels"].split(), dtype=np.uint8).reshape(48, 48) for r in rows])
    probs = TFLiteClassifier(path).predict(faces)
    assert probs.shape == (16, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=0.05)


def test_bundled_key_selects_the_model(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[model]\nbundled = "cnn_lstm"\n')
    cfg = load_config(cfg_file)
    assert cfg.model.resolved_path() == default_model_path("cnn_lstm")
    assert load_config(None).model.resolved_path() == default_model_path("cnn")
    cfg_file.write_text('[model]\nbundled = "transformer"\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg_file)
    assert "bundled" in str(e.value) and "cnn_lstm" in str(e.value)
    with pytest.raises(
        ConfigError, match="valid: cnn, cnn_lstm, cnn_ferplus, cnn_trainval, cnn_distilled"
    ):
        default_model_path("nope")


def test_model_flag_accepts_a_bundled_name_and_overrides_the_file(tmp_path: Path) -> None:
    assert _model_override(Path("cnn_lstm")) == {
        "bundled": "cnn_lstm",
        "path": None,
        "ensemble": [],
    }
    assert _model_override(tmp_path / "m.tflite") == {
        "path": str(tmp_path / "m.tflite"),
        "bundled": None,
        "ensemble": [],
    }
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[model]\npath = "/elsewhere/model.tflite"\n')
    cfg = load_config(cfg_file, {"model": _model_override(Path("cnn"))})
    assert cfg.model.resolved_path() == default_model_path("cnn")


def test_default_and_any_named_model_replaces_it(tmp_path: Path) -> None:
    # No config names a model: the default models run (cnn and cnn_distilled averaged;
    # docs/RESULTS.md says why this pair). Each way of naming one (a path, a bundled name, an
    # ensemble, the --model flag) replaces the default entirely.
    default = [default_model_path(m) for m in DEFAULT_MODELS]
    assert DEFAULT_MODELS == ("cnn", "cnn_distilled")
    model = load_config(None).model
    assert model.resolved_paths() == default and model.tta == "flip"
    cfg_file = tmp_path / "c.toml"
    for text, want in [
        ('[model]\npath = "/x/m.tflite"\n', [Path("/x/m.tflite")]),
        ('[model]\nbundled = "cnn_trainval"\n', [default_model_path("cnn_trainval")]),
        (
            '[model]\nensemble = ["cnn_lstm", "/x/m.tflite"]\n',
            [default_model_path("cnn_lstm"), Path("/x/m.tflite")],
        ),
        ('[model]\ntta = "none"\n', default),
    ]:
        cfg_file.write_text(text)
        assert load_config(cfg_file).model.resolved_paths() == want, text
    cfg = load_config(None, {"model": _model_override(Path("cnn_trainval"))})
    assert cfg.model.resolved_paths() == [default_model_path("cnn_trainval")]
    cfg_file.write_text('[model]\nbundled = "cnn_lstm"\n')
    cfg = load_config(cfg_file, {"model": _model_override(tmp_path / "m.tflite")})
    assert cfg.model.resolved_paths() == [tmp_path / "m.tflite"]


def test_ferplus_model_is_trained_and_calibrated_on_ferplus_votes() -> None:
    # FERPlus is a first-class label set: the bundled FERPlus model keeps the seven labels the
    # events, Home Assistant and the dashboard know, and says where its labels and its
    # temperature came from (FERPlus votes; TrainVal, never PublicTest).
    meta = read_metadata(default_model_path("cnn_ferplus"))
    assert meta.labels == FER2013_LABELS
    options = meta.training["options"]
    assert options["labels"] == "ferplus" and options["ferplus_classes"] == 7
    assert options["val_usage"] == "TrainVal"
    cal = meta.calibration
    assert cal["fitted_on"]["usage"] == "TrainVal" and cal["fitted_on"]["labels"] == "ferplus"
    assert cal["setting"] == {"tta": "flip", "members": []}
    assert cal["ece_after"] < cal["ece_before"]


def test_trainval_model_is_calibrated_and_averages_with_cnn() -> None:
    # cnn_trainval never trained on the TrainVal slice, so its temperature could be fitted
    # there; it shares cnn's labels and contract, so the two average without complaint.
    from edge.classify.deployed import open_configured
    from edge.config import ModelConfig

    meta = read_metadata(default_model_path("cnn_trainval"))
    assert meta.training["options"]["val_usage"] == "TrainVal"
    assert meta.training["options"]["labels"] == "fer2013"
    assert meta.calibration["fitted_on"]["usage"] == "TrainVal"
    both = open_configured(ModelConfig(tta="flip", ensemble=["cnn", "cnn_trainval"]))
    assert len(both.members) == 2 and tuple(both.labels) == FER2013_LABELS
    faces = np.full((2, 48, 48), 128, np.uint8)
    assert np.allclose(both.predict(faces).sum(axis=1), 1.0, atol=0.05)  # int8 outputs


def test_distilled_model_learned_only_from_trainval_selected_teachers() -> None:
    # cnn_distilled is half of the default pair. Its temperature was fitted on TrainVal, so
    # neither it nor any of its teachers may have trained on TrainVal's faces (cnn did: it is
    # not among the teachers).
    meta = read_metadata(default_model_path("cnn_distilled"))
    options = meta.training["options"]
    assert options["val_usage"] == "TrainVal" and options["labels"] == "fer2013"
    assert options["teacher"] and not any("default.tflite" in t for t in options["teacher"])
    assert meta.calibration["fitted_on"]["usage"] == "TrainVal"
    assert meta.calibration["setting"] == {"tta": "flip", "members": []}
    assert meta.calibration["ece_after"] < meta.calibration["ece_before"]


def test_default_pair_runs_without_a_fitted_temperature_by_design(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No temperature can be fitted for the default pair (cnn trained on every Training face),
    # so it runs at T = 1 and says so as info; a user's own uncalibrated setting still warns.
    import logging

    from edge.classify.deployed import open_configured
    from edge.config import ModelConfig

    with caplog.at_level(logging.INFO, logger="edge.classify.deployed"):
        default = open_configured(load_config(None).model)
    assert [m.path for m in default.members] == [default_model_path(m) for m in DEFAULT_MODELS]
    assert default.temperature == 1.0 and not default.describe()["calibrated"]
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge.classify.deployed"):
        open_configured(ModelConfig(ensemble=list(DEFAULT_MODELS)))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "no calibration fitted" in caplog.records[0].getMessage()
