"""The config tree: unknown keys, bad values with choices, TOML + CLI precedence, validate-config."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.cli import build_parser, main, run_overrides
from edge.config import (
    EdgeConfig,
    FileSourceConfig,
    OpenCVSourceConfig,
    default_model_path,
    find_secrets,
    load_config,
    source_override,
    validate_config,
)
from edge.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    p.chmod(0o640)
    return p


def test_defaults_are_the_out_of_the_box_job() -> None:
    cfg = EdgeConfig()
    assert isinstance(cfg.source, FileSourceConfig) and cfg.source.resolved_path().is_file()
    assert cfg.model.resolved_path() == default_model_path()
    assert cfg.detector.type == "blazeface" and cfg.detector.variant == "short"
    assert cfg.detector.motion_gate and cfg.shutdown_timeout_s == 5.0
    assert [s.type for s in cfg.effective_sinks()] == ["stdout"]
    assert cfg.device_id  # host name


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    from edge.camera.config import SourceConfig
    from edge.config import ModelConfig, TrackingConfig
    from edge.detect.config import DetectorConfig
    from edge.plugins import union_members
    from edge.publish.config import SinkConfig

    # Every plugin config class of every union, read off the unions (a new backend is covered).
    plugins = [m for u in (SourceConfig, DetectorConfig, SinkConfig) for m in union_members(u).values()]  # fmt: skip
    models: list[type[BaseModel]] = [EdgeConfig, ModelConfig, TrackingConfig, *plugins]
    assert len(plugins) == 9
    for m in models:
        assert m.model_config.get("extra") == "forbid", m.__name__
        for name, f in m.model_fields.items():
            assert f.description, f"{m.__name__}.{name} has no description"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"devic_id": "x"}, ["devic_id: unknown key", "device_id"]),
        ({"detector": {"min_fac": 3}}, ["detector.min_fac: unknown key", "min_face"]),
        ({"source": {"type": "opencv", "path": "x"}}, ["source.path: unknown key", "device"]),
        ({"sinks": [{"type": "mqtt", "topic": "x"}]}, ["sinks[0].topic: unknown key", "url"]),
        (
            {"source": {"type": "usb"}},
            ["source.type", "'usb'", "'file'", "'opencv'", "'picamera2'"],
        ),
        (
            {"detector": {"type": "dlib"}},
            ["detector.type", "'dlib'", "'haar'", "'yunet'", "'blazeface'"],
        ),
        (
            {"detector": {"type": "haar", "model": "y.onnx"}},
            ["detector.model: unknown key for type 'haar'", "valid keys:", "cascade"],
        ),
        (
            {"detector": {"type": "blazeface", "cascade": "x.xml"}},
            ["detector.cascade: unknown key for type 'blazeface'", "variant", "score_threshold"],
        ),
        ({"detector": {"type": "blazeface", "variant": "mid"}}, ["'short'", "'full'"]),
        ({"sinks": [{"type": "kafka"}]}, ["sinks[0]", "'kafka'", "'mqtt'", "'jsonl'"]),
        ({"log_level": "LOUD"}, ["log_level", "'DEBUG'", "'INFO'"]),
        ({"tracking": {"alpha": 1.5}}, ["tracking.alpha", "less than or equal to 1"]),
        ({"detector": {"type": "yunet"}}, ["detector", "detector.model"]),
        ({"source": {}}, ["source: missing 'type'", "file, opencv, picamera2"]),
        ({"device_id": "a/b"}, ["device_id", "pattern"]),
    ],
)
def test_errors_name_key_and_choices(data: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as ei:
        validate_config(data)
    for part in expected:
        assert part in str(ei.value)


def test_several_problems_in_one_message() -> None:
    with pytest.raises(ConfigError) as ei:
        validate_config({"foo": 1, "tracking": {"min_hits": 0}})
    msg = str(ei.value)
    assert "foo: unknown key" in msg and "tracking.min_hits" in msg


def test_secret_never_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as ei:
        validate_config({"sinks": [{"type": "mqtt", "url": "http://u:s3cret@h"}]})
    assert "s3cret" not in str(ei.value) and "scheme" in str(ei.value)


def test_toml_and_override_precedence(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
device_id = "from-file"
stats_interval_s = 7
[source]
type = "opencv"
device = 1
width = 640
[detector]
min_face = 50
detect_every = 3
[[sinks]]
type = "jsonl"
path = "/tmp/a.jsonl"
""",
    )
    cfg = load_config(p)
    assert cfg.device_id == "from-file" and cfg.stats_interval_s == 7
    assert isinstance(cfg.source, OpenCVSourceConfig) and cfg.source.width == 640
    assert [s.type for s in cfg.effective_sinks()] == ["stdout", "jsonl"]

    args = build_parser().parse_args(
        ["run", "--device-id", "cli", "--source", "2", "--jsonl", "/tmp/b.jsonl",
         "--mqtt-url", "mqtt://broker:1884", "--max-frames", "5"]
    )  # fmt: skip
    cfg = load_config(p, run_overrides(args))
    assert cfg.device_id == "cli" and cfg.max_frames == 5
    # Same source type: CLI keys merge over the file's table.
    assert isinstance(cfg.source, OpenCVSourceConfig)
    assert cfg.source.device == 2 and cfg.source.width == 640
    # Untouched file values survive; the CLI jsonl replaces the file's jsonl.
    assert cfg.detector.min_face == 50 and cfg.detector.detect_every == 3
    types = {s.type: s for s in cfg.effective_sinks()}
    assert set(types) == {"jsonl", "mqtt"}  # mqtt configured: no stdout
    assert str(types["jsonl"].path) == "/tmp/b.jsonl"

    # A different source type replaces the table instead of mixing keys.
    cfg = load_config(p, {"source": source_override("video.mp4")})
    assert isinstance(cfg.source, FileSourceConfig) and cfg.source.path == Path("video.mp4")


def test_source_override_kinds() -> None:
    assert source_override("0") == {"type": "opencv", "device": 0}
    assert source_override("picamera2") == {"type": "picamera2"}
    assert source_override("rtsp://cam/1")["type"] == "opencv"
    assert source_override("nvarguscamerasrc ! appsink")["type"] == "opencv"
    assert source_override("clips/") == {"type": "file", "path": "clips/"}


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "device_id = \n"))


def test_world_readable_secret_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = '[[sinks]]\ntype = "mqtt"\nurl = "mqtt://h"\npassword = "hunter2"\n'
    p = write(tmp_path, text)
    with caplog.at_level(logging.WARNING, logger="edge.config_file"):
        load_config(p)
    assert not caplog.records  # 0640: fine
    p.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="edge.config_file"):
        cfg = load_config(p)
    assert "world-readable" in caplog.text and "sinks[0].password" in caplog.text
    assert "hunter2" not in caplog.text and "hunter2" not in cfg.summary()
    assert find_secrets({"a": {"url": "mqtt://u:p@h"}, "password_file": "/x"}) == ["a.url"]


def test_validate_config_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_path: Path
) -> None:
    good = write(tmp_path, f'device_id = "cam1"\n[model]\npath = "{model_path}"\n')
    assert main(["validate-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "device_id=cam1" in out

    bad = write(tmp_path, '[detector]\ntype = "dlib"\n', "bad.toml")
    assert main(["validate-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "detector.type" in err and "'haar'" in err and "Traceback" not in err

    missing_model = write(tmp_path, '[model]\npath = "/nonexistent/m.tflite"\n', "mm.toml")
    assert main(["validate-config", str(missing_model)]) == 2
    assert "/nonexistent/m.tflite" in capsys.readouterr().err
    assert main(["validate-config", "--schema-only", str(missing_model)]) == 0
    assert "schema only" in capsys.readouterr().out

    assert main(["validate-config", str(tmp_path / "absent.toml")]) == 2


def test_deploy_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted((Path(__file__).resolve().parents[1] / "deploy").glob("*.toml"))
    if not examples:
        pytest.skip("no deploy/*.toml examples in this checkout")
    for ex in examples:
        assert main(["validate-config", "--schema-only", str(ex)]) == 0, capsys.readouterr().err


def test_realtime_flag_rejected_for_camera(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--source", "0", "--realtime"]) == 2
    assert "file source" in capsys.readouterr().err
