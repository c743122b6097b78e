"""Bad input everywhere: fuzzed configs and CSV rows, and every CLI command fed garbage.

The contract under test: a malformed input is reported as the project's own error (ConfigError,
DataError, exit code 2) with a message naming the problem, never as another exception or a
traceback. The event decoder is fuzzed in test_events.py (arbitrary payloads, mutated keys, the
JSON round-trip property) and not repeated here.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import load_config, merge_overrides, validate_config
from edge.errors import ConfigError, DataError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------ config loader
# Real keys make the fuzzer reach deep validation paths instead of stopping at "unknown key".
_KEYS = [
    "device_id", "source", "detector", "model", "tracking", "sinks", "stats_interval_s",
    "broker_wait_s", "shutdown_timeout_s", "max_frames", "max_frame_pixels", "log_level",
    "type", "path", "realtime", "loop", "fps", "device", "width", "height", "open_timeout_s",
    "backoff_max_s", "camera_num", "main_size", "lores_size", "use_lores", "detect_width",
    "min_face", "detect_every", "roi_scale", "cascade", "model", "num_threads", "url",
    "username", "password", "password_file", "password_env", "qos", "queue_size", "tls_insecure",
    "topic_prefix", "reconnect_min_s", "reconnect_max_s", "protocol", "fsync_every", "ca_file",
    "status_expiry_s", "keepalive_s",
    "alpha", "min_hits", "iou_threshold",
]  # fmt: skip
_TYPES = ["file", "opencv", "picamera2", "haar", "yunet", "mqtt", "jsonl", "stdout", "usb", ""]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(_TYPES),
    st.sampled_from(["mqtt://h:1883", "mqtts://u:p@h", "mqtt://h:99999", "rtsp://a:b@c/x", "0"]),
)
_keys = st.one_of(st.sampled_from(_KEYS), st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)
_configs = st.dictionaries(_keys, _values, max_size=8)


def _only_config_error(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ConfigError as e:
        msg = str(e)
        assert msg and "Traceback" not in msg
        assert msg.count("\n") < 200  # one readable message, not a dump


@FUZZ
@given(_configs)
def test_fuzz_config_dicts_raise_only_config_error(data: dict[str, Any]) -> None:
    _only_config_error(validate_config, data)


@FUZZ
@given(_configs, _configs)
def test_fuzz_overrides_raise_only_config_error(base: dict[str, Any], over: dict[str, Any]) -> None:
    def merged() -> None:
        validate_config(merge_overrides(base, over))

    # merge_overrides works on what a TOML file and the CLI give: lists of tables for sinks.
    if isinstance(over.get("sinks"), list) and all(isinstance(s, dict) for s in over["sinks"]):
        _only_config_error(merged)
    else:
        _only_config_error(validate_config, {**base, **over})


_toml_fragments = st.sampled_from(
    [
        "[source]\n", "type = \"opencv\"\n", "device = \"x\"\n", "[[sinks]]\n",
        "type = \"mqtt\"\n", "url = \"mqtt://h\"\n", "password = \"pw\"\n", "[model]\n",
        "num_threads = 0\n", "= 1\n", "[a.b.c]\n", "x = [1, \"a\"]\n", "\"\n", "\x00",
        "max_frames = -1\n", "[detector]\ntype = \"yunet\"\n", "log_level = 3\n", "\ufeff",
        "[[sinks]]\ntype = \"jsonl\"\n", "queue_size = 1e9\n", "[source]\ntype=\"file\"\n",
    ]
)  # fmt: skip


@FUZZ
@given(st.one_of(st.lists(_toml_fragments, max_size=10).map("".join), st.text(max_size=200)))
def test_fuzz_config_files_raise_only_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        p.chmod(0o600)
        _only_config_error(load_config, p)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_binary_config_files(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_bytes(raw)
        _only_config_error(load_config, p)


# ------------------------------------------------------------------------------ FER2013 CSV
_VALID = "3," + " ".join(["128"] * 2304) + ",Training"
_bad_fields = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["", "x", "3.5", "1e1", " 3", "-0", "\x00", '"', "7"]),
)
_bad_pixels = st.one_of(
    st.integers(0, 2400).map(lambda n: " ".join(["7"] * n)),
    st.sampled_from(
        [
            " ".join(["300"] * 2304),
            " ".join(["-1"] * 2304),
            " ".join(["x"] * 2304),
            " ".join(["1.5"] * 2304),
            "",
        ]
    ),
    st.text(max_size=40),
)
_bad_usage = st.one_of(
    st.sampled_from(["Training", "PublicTest", "PrivateTest", "training", "", "Test"]),
    st.text(max_size=10),
)


@st.composite
def _bad_rows(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["fields", "structure", "text"]))
    if kind == "fields":
        return f"{draw(_bad_fields)},{draw(_bad_pixels)},{draw(_bad_usage)}"
    if kind == "structure":
        return draw(
            st.sampled_from(
                ["3", "3," + " ".join(["1"] * 2304), '3,"unterminated', ",,", "a,b,c,d,e"]
            )
        )
    return draw(st.text(max_size=60).filter(lambda s: "\n" not in s and "\r" not in s))


@FUZZ
@given(st.integers(0, 4), _bad_rows())
def test_fuzz_fer2013_rows_raise_only_data_error_naming_the_row(at: int, bad: str) -> None:
    from train.data.fer2013 import load_fer2013, read_fer2013_csv

    rows = [_VALID] * 5
    rows.insert(at, bad)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fer.csv"
        p.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n", errors="surrogatepass")
        try:
            images, _, _ = read_fer2013_csv(p, cache=False)
        except DataError as e:
            assert str(p) in str(e)
            # The bad row is named, with its 0-based index and its line in the file.
            assert f"row {at} (line {at + 2})" in str(e), str(e)
        else:
            # Whatever passed was a valid row (or blank, which the CSV reader skips).
            assert len(images) in (5, 6)
        try:
            load_fer2013(p, "Training")
        except DataError as e:
            assert str(e)


def test_fer2013_bad_row_message_names_row_and_line(tmp_path: Path) -> None:
    from train.data.fer2013 import read_fer2013_csv

    p = tmp_path / "fer.csv"
    p.write_text("emotion,pixels,Usage\n" + "\n".join([_VALID, _VALID, "9,1 2,Training"]) + "\n")
    with pytest.raises(DataError, match=r"row 2 \(line 4\): emotion 9 is outside 0\.\.6"):
        read_fer2013_csv(p, cache=False)


# ------------------------------------------------------------------------------ CLI
def _make_cli_files(tmp: Path) -> None:
    """The bad files the CLI cases point at (created per test, in its tmp_path)."""
    (tmp / "bad.toml").write_text("[source\ntype = 'file'\n")
    (tmp / "keys.toml").write_text(
        "[source]\ntype = 'usb'\n[[sinks]]\ntype = 'mqtt'\nurl = 'ftp://x'\n"
    )
    (tmp / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp / "junk.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 4)
    (tmp / "empty-folder").mkdir()


def _cli_cases(tmp: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of every CLI case; only builds paths, so it is safe at import time."""
    bad_toml, bad_keys, binary = tmp / "bad.toml", tmp / "keys.toml", tmp / "bin.toml"
    junk_model, folder = tmp / "junk.tflite", tmp / "empty-folder"
    return [
        ("run: missing config", ["run", "--config", str(tmp / "absent.toml")]),
        ("run: config is not TOML", ["run", "--config", str(bad_toml)]),
        ("run: config has bad keys", ["run", "--config", str(bad_keys)]),
        ("run: config is binary", ["run", "--config", str(binary)]),
        ("run: bad mqtt url", ["run", "--mqtt-url", "ftp://broker"]),
        ("run: bad mqtt port", ["run", "--mqtt-url", "mqtt://h:99999"]),
        ("run: bad device id", ["run", "--device-id", "a/b#"]),
        ("run: zero max frames", ["run", "--max-frames", "0"]),
        ("run: realtime on a camera", ["run", "--source", "0", "--realtime"]),
        ("run: missing source file", ["run", "--source", str(tmp / "absent.avi")]),
        ("run: empty image folder", ["run", "--source", str(folder)]),
        ("run: junk model", ["run", "--model", str(junk_model)]),
        ("run: model is a folder", ["run", "--model", str(folder)]),
        ("info: missing model", ["info", str(tmp / "absent.tflite")]),
        ("info: junk model", ["info", str(junk_model), "--json"]),
        ("validate-config: missing", ["validate-config", str(tmp / "absent.toml")]),
        ("validate-config: not TOML", ["validate-config", str(bad_toml)]),
        ("validate-config: bad keys", ["validate-config", "--schema-only", str(bad_keys)]),
        ("validate-config: binary", ["validate-config", str(binary)]),
        ("monitor: bad url", ["monitor", "--mqtt-url", "nope://x"]),
        ("dashboard: bad port", ["dashboard", "--mqtt-url", "mqtt://h", "--port", "0"]),
        (
            "monitor: negative staleness",
            ["monitor", "--mqtt-url", "mqtt://h", "--stale-after-s", "-1"],
        ),
        (
            "dashboard: NaN staleness",
            ["dashboard", "--mqtt-url", "mqtt://h", "--stale-after-s", "nan"],
        ),
        ("argparse: unknown flag", ["run", "--frobnicate"]),
        ("argparse: not a number", ["run", "--max-frames", "many"]),
        ("argparse: no command", []),
    ]


# Names only: the placeholder folder is never created (the test builds the files in tmp_path).
_CASE_NAMES = [name for name, _ in _cli_cases(Path("/nonexistent/fer-edge-cli-cases"))]


def test_collecting_cli_cases_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cases"
    assert [name for name, _ in _cli_cases(root)] == _CASE_NAMES
    assert not root.exists()


@pytest.mark.parametrize("case", _CASE_NAMES)
def test_cli_bad_input_is_a_message_not_a_traceback(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    _make_cli_files(tmp_path)
    argv = dict(_cli_cases(tmp_path))[case]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = int(e.code or 0)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err + out
    assert "error" in err.lower()
    assert out == ""  # nothing half-done on stdout (no events, no JSON)
