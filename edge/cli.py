"""``fer-edge``: run the device pipeline, inspect models, validate configs, watch devices.

Every expected failure is a :class:`~edge.errors.FerEdgeError`: its message goes to stderr and
the process exits with its ``exit_code`` (2 for bad config/model/source), without a traceback.
Logging is configured here and nowhere else; logs go to stderr so stdout can carry pure JSON
event lines.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.atomic import write_json, write_text_atomic
from edge.bundled import BUNDLED_MODELS
from edge.errors import ConfigError, DetectorError, FerEdgeError
from edge.liveness import DEFAULT_EXPIRY_S
from edge.redact import redact_secrets

if TYPE_CHECKING:
    from edge.config import EdgeConfig

log = logging.getLogger("edge.cli")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fer-edge`` (also used to render docs)."""
    p = argparse.ArgumentParser(
        prog="fer-edge",
        description="Facial-expression recognition on the device: camera -> faces -> int8 "
        "model -> emotion events (MQTT, stdout, JSONL).",
    )
    p.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    _add_info_parser(sub)
    _add_validate_parser(sub)
    _add_monitor_parser(sub)
    _add_dashboard_parser(sub)
    _add_bench_parser(sub)
    return p


def _add_run_parser(sub: Any) -> None:
    """``fer-edge run`` flags (they override the config, see :func:`run_overrides`)."""
    r = add_command(
        sub,
        "run",
        cmd_run,
        "run the pipeline (default: the bundled models and sample video, events on stdout)",
    )
    r.add_argument("--config", type=Path, help="TOML config file (e.g. /etc/fer-edge/config.toml)")
    r.add_argument(
        "--source",
        help="camera index (0), 'picamera2', a stream URL, a GStreamer pipeline, or a video "
        "file / image folder",
    )
    r.add_argument(
        "--model",
        type=Path,
        help="int8 .tflite model with fer-edge metadata, or a bundled model name: "
        + ", ".join(BUNDLED_MODELS),
    )
    _add_detector_flag(r)
    r.add_argument("--mqtt-url", help="publish to this broker (mqtt://host:1883, mqtts://...)")
    r.add_argument("--device-id", help="device name in events and topics (default: host name)")
    r.add_argument("--jsonl", type=Path, help="also append events to this JSONL file")
    r.add_argument("--max-frames", type=int, help="stop after N frames")
    r.add_argument(
        "--realtime", action="store_true", help="file source: pace at the native frame rate"
    )
    r.add_argument("--loop", action="store_true", help="file source: replay forever")
    r.add_argument("--log-level", choices=_LOG_LEVELS, type=str.upper)


def _add_info_parser(sub: Any) -> None:
    """``fer-edge info`` flags."""
    i = sub.add_parser("info", help="show a model's metadata, path and sha256")
    i.set_defaults(func=cmd_info)
    i.add_argument(
        "model", nargs="?", type=Path, help="model file (default: the first configured model)"
    )
    i.add_argument("--json", action="store_true", help="machine-readable JSON")
    i.add_argument(
        "--config",
        type=Path,
        help="also show how this config's [model] section deploys the model (test-time "
        "augmentation, ensemble, temperature); default: the package defaults",
    )


def _add_validate_parser(sub: Any) -> None:
    """``fer-edge validate-config`` flags."""
    v = sub.add_parser("validate-config", help="check a config file; exit 0 if valid, 2 if not")
    v.set_defaults(func=cmd_validate_config)
    v.add_argument("config", type=Path)
    v.add_argument(
        "--schema-only",
        action="store_true",
        help="check keys and values only, not that the model/source files exist (CI, examples)",
    )


def _add_monitor_parser(sub: Any) -> None:
    """``fer-edge monitor`` flags (the table lives in :mod:`edge.monitor`)."""
    m = sub.add_parser("monitor", help="live per-device table of events from a broker")
    m.set_defaults(func=cmd_monitor)
    m.add_argument("--mqtt-url", required=True, help="broker URL (mqtt://host:1883)")
    m.add_argument("--prefix", default="fer", help="topic prefix (default: fer)")
    m.add_argument("--json", action="store_true", help="print received messages as JSON lines")
    _add_stale_flag(m)


def _add_stale_flag(p: argparse.ArgumentParser) -> None:
    """``--stale-after-s``: when a silent ``online`` device is shown stale (monitor, dashboard)."""
    p.add_argument(
        "--stale-after-s",
        type=float,
        default=DEFAULT_EXPIRY_S,
        help="show an online device as stale after this many seconds without a sign of life "
        f"(default {DEFAULT_EXPIRY_S}; an MQTT 5 status expiry takes precedence)",
    )


def _add_detector_flag(p: argparse.ArgumentParser) -> None:
    """``--detector TYPE``: override ``[detector] type`` (the schedule keys are kept)."""
    from edge.detect import DETECTORS

    p.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        help="face detector, overriding the config's [detector] type (its schedule keys are "
        "kept, keys of another type dropped)",
    )


def _add_bench_parser(sub: Any) -> None:
    """``fer-edge bench`` flags (the benchmark lives in :mod:`edge.bench`)."""
    b = add_command(
        sub,
        "bench",
        _cmd_bench,
        "per-stage CPU/wall time, FPS, memory and start-up on a video file",
    )
    b.add_argument(
        "--source", help="video file or image folder (default: the bundled sample video)"
    )
    b.add_argument("--frames", type=int, default=300, help="frames to process (default 300)")
    b.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    b.add_argument("--model", type=Path, help="int8 .tflite model (default: the bundled one)")
    b.add_argument("--config", type=Path, help="TOML config (detector, model, tracking, sinks)")
    _add_detector_flag(b)
    b.add_argument(
        "--boxes", type=Path, help="write each frame's face boxes as JSON lines (recall)"
    )
    b.add_argument("--log-level", choices=_LOG_LEVELS, type=str.upper, default="WARNING")


def _add_dashboard_parser(sub: Any) -> None:
    """``fer-edge dashboard`` flags (the server lives in :mod:`edge.dashboard.server`)."""
    d = add_command(
        sub,
        "dashboard",
        _cmd_dashboard,
        "live web dashboard of the devices on a broker (needs fer-edge[dashboard])",
    )
    d.add_argument("--mqtt-url", required=True, help="broker URL (mqtt://host:1883, mqtts://...)")
    d.add_argument("--port", type=int, default=8080, help="HTTP port (default: 8080)")
    d.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    d.add_argument("--prefix", default="fer", help="topic prefix (default: fer)")
    d.add_argument("--username", help="broker user name")
    d.add_argument(
        "--password", help="broker password (better: the FER_EDGE_MQTT_PASSWORD environment)"
    )
    d.add_argument("--ca-file", help="CA bundle for an mqtts:// broker")
    d.add_argument(
        "--basic-auth",
        metavar="USER:PASS",
        help="require HTTP basic auth (better: the FER_EDGE_DASHBOARD_AUTH environment)",
    )
    d.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without basic auth (anyone on the network can watch)",
    )
    _add_stale_flag(d)
    d.add_argument(
        "--history-min", type=float, default=10.0, help="minutes shown in the charts (default 10)"
    )
    d.add_argument("--log-level", choices=_LOG_LEVELS, type=str.upper, default="INFO")


def add_command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int | None], summary: str
) -> argparse.ArgumentParser:
    """Register sub-command ``name`` (fer-edge's and fer-train's), run by ``func``.

    ``summary`` is the line in the command list; ``func``'s docstring is the ``--help``
    description, so what a command does is written once, where it is done.
    """
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=inspect.getdoc(func)
    )
    p.set_defaults(func=func)
    return p


def setup_logging(level: str) -> None:
    """Send logs to stderr at ``level`` (stdout is reserved for event lines)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Turn ``fer-edge run`` flags into a config overrides dict."""
    from edge.config import source_override

    o: dict[str, Any] = {}
    if args.source is not None:
        o["source"] = source_override(args.source)
    if "source" in o and (args.realtime or args.loop):
        if o["source"]["type"] != "file":
            raise ConfigError("--realtime and --loop apply only to a file source")
        o["source"].update({"realtime": args.realtime, "loop": args.loop})
    if args.model is not None:
        o["model"] = _model_override(args.model)
    if args.detector is not None:
        o["detector"] = {"type": args.detector}
    if args.device_id is not None:
        o["device_id"] = args.device_id
    sinks: list[dict[str, Any]] = []
    if args.mqtt_url is not None:
        sinks.append({"type": "mqtt", "url": args.mqtt_url})
    if args.jsonl is not None:
        sinks.append({"type": "jsonl", "path": str(args.jsonl)})
    if sinks:
        o["sinks"] = sinks
    if args.max_frames is not None:
        o["max_frames"] = args.max_frames
    if args.log_level is not None:
        o["log_level"] = args.log_level
    return o


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline. Flags override the config file, which overrides defaults."""
    from edge.config import load_config

    setup_logging(args.log_level or "INFO")
    overrides = run_overrides(args)
    cfg = load_config(args.config, overrides)
    if args.realtime or args.loop:
        if cfg.source.type != "file":
            raise ConfigError(
                f"--realtime/--loop apply only to a file source; the source is {cfg.source.type!r}"
            )
        update = {"realtime": args.realtime or cfg.source.realtime}
        update["loop"] = args.loop or cfg.source.loop
        cfg.source = cfg.source.model_copy(update=update)
    setup_logging(cfg.log_level)
    from edge.app import Pipeline

    pipeline = Pipeline(cfg)
    pipeline.install_signal_handlers()
    pipeline.run()
    return 0


def model_info(path: Path) -> dict[str, Any]:
    """Metadata, path, size and sha256 of a model file (no secrets)."""
    from edge.model_meta import file_sha256, read_metadata

    meta = read_metadata(path)
    return {
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "metadata": redact_secrets(meta.to_dict()),
    }


def _model_override(value: Path) -> dict[str, Any]:
    """``--model``: a bundled model name (``edge.bundled.BUNDLED_MODELS``) unless a file of that
    name exists."""
    from edge.config import BUNDLED_MODELS

    # The flag names the one model to run: it replaces the config file's path or ensemble.
    if str(value) in BUNDLED_MODELS and not value.exists():
        return {"bundled": str(value), "path": None, "ensemble": []}
    return {"path": str(value), "bundled": None, "ensemble": []}


def cmd_info(args: argparse.Namespace) -> int:
    """``fer-edge info``."""
    from edge.classify.deployed import open_configured
    from edge.config import load_config
    from edge.errors import ModelError

    setup_logging("ERROR")
    overrides = {} if args.model is None else {"model": _model_override(args.model)}
    cfg = load_config(args.config, overrides)
    path = _info_model_path(args, cfg)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    info = model_info(path)
    clf = open_configured(cfg.model)
    info["deployed"] = clf.describe()
    clf.close()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print("\n".join(_info_lines(info)))
    return 0


def _info_model_path(args: argparse.Namespace, cfg: EdgeConfig) -> Path:
    """The file ``fer-edge info`` describes: the flag's model, else the config's, else bundled."""
    from edge.config import BUNDLED_MODELS, default_model_path

    if args.model is not None and str(args.model) in BUNDLED_MODELS and not args.model.exists():
        return default_model_path(str(args.model))
    if args.model is not None:
        return Path(args.model)
    return cfg.model.resolved_path()


def _info_lines(info: dict[str, Any]) -> list[str]:
    """The human-readable form of :func:`model_info` plus its ``deployed`` block."""
    meta = info["metadata"]
    dep = info["deployed"]
    c = meta["contract"]
    return [
        f"model:        {info['path']}",
        f"sha256:       {info['sha256']}",
        f"size:         {info['bytes']} bytes",
        f"architecture: {meta['arch']} (seed {meta.get('seed', '?')})",
        f"labels:       {', '.join(meta['labels'])}",
        f"input:        {c['size']}x{c['size']} gray, crop margin {c['crop_margin']}, "
        f"{c['interpolation']} resize",
        f"quantization: {json.dumps(meta.get('quantization', {}), sort_keys=True)}",
        f"metrics:      {json.dumps(meta.get('metrics', {}), sort_keys=True)}",
        f"parity:       {json.dumps(meta.get('parity', {}), sort_keys=True)}",
        f"created:      {meta.get('created', '')} by fer-edge {meta.get('tool_version', '')}",
        f"deployed:     tta={dep['tta']}, {len(dep['ensemble'])} model(s), temperature "
        f"{dep['temperature']:.3f} ({dep['calibration_source']})",
    ]


def cmd_validate_config(args: argparse.Namespace) -> int:
    """``fer-edge validate-config``: schema check plus the files the config points to."""
    from edge.config import load_config

    setup_logging("WARNING")
    cfg = load_config(args.config)
    if args.schema_only:
        print(f"{args.config}: valid (schema only): {cfg.summary()}")
        return 0
    problems = []
    for i, model in enumerate(cfg.model.resolved_paths()):
        if not model.is_file():
            key = f"model.ensemble[{i}]" if cfg.model.ensemble else "model.path"
            problems.append(f"{key}: model file {model} does not exist")
    try:
        # Loads the cascade / ONNX / TFLite file the way `run` does: checksum, shapes and all.
        from edge.detect import create_detector

        create_detector(cfg.detector)
    except DetectorError as e:
        problems.append(f"detector: {e}")
    if cfg.source.type == "file" and not cfg.source.resolved_path().exists():
        problems.append(f"source.path: {cfg.source.resolved_path()} does not exist")
    if problems:
        raise ConfigError(f"{args.config}: " + "; ".join(problems))
    print(f"{args.config}: valid: {cfg.summary()}")
    return 0


def _check_stale_after(value: float) -> None:
    """Refuse a ``--stale-after-s`` outside (0, 86400]."""
    if not 0 < value <= 86400:
        raise ConfigError(f"--stale-after-s {value} must be in (0, 86400]")


def cmd_monitor(args: argparse.Namespace) -> int:
    """``fer-edge monitor``: delegate to :func:`edge.monitor.run_monitor`."""
    from edge.monitor import run_monitor

    setup_logging("WARNING")
    _check_stale_after(args.stale_after_s)
    rc = run_monitor(
        args.mqtt_url, prefix=args.prefix, as_json=args.json, stale_after_s=args.stale_after_s
    )
    return int(rc or 0)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve a live web page of every device under --prefix: status, faces with emotion and
    confidence, a rolling per-emotion chart and stats. Binds 127.0.0.1 unless --host says
    otherwise; any other address needs --basic-auth (or --insecure-no-auth)."""
    import os

    from edge.subscribe.link import subscriber_config

    setup_logging(args.log_level)
    try:
        from edge.dashboard import server
    except ImportError as e:
        raise ConfigError(
            f"the dashboard needs aiohttp ({e}); install it with: pip install 'fer-edge[dashboard]'"
        ) from None
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port (1-65535)")
    if not 0 < args.history_min <= 24 * 60:
        raise ConfigError(f"--history-min {args.history_min} must be in (0, 1440]")
    auth = server.parse_basic_auth(args.basic_auth or os.environ.get(server.AUTH_ENV))
    cfg = subscriber_config(
        "dashboard",
        args.mqtt_url,
        args.prefix,
        username=args.username,
        password=args.password,
        ca_file=args.ca_file,
    )
    _check_stale_after(args.stale_after_s)
    dash = server.Dashboard(
        cfg, auth=auth, history_s=args.history_min * 60, stale_after_s=args.stale_after_s
    )
    return server.run_dashboard(dash, args.host, args.port, insecure_no_auth=args.insecure_no_auth)


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run the pipeline on a file for N frames and report per-stage CPU and wall time
    (p50/p95), end-to-end FPS, RSS (peak, steady) and start-up to the first event. Pin it to
    one core for comparable numbers: taskset -c 0 fer-edge bench ..."""
    from edge import bench
    from edge.config import load_config, source_override

    setup_logging(args.log_level)
    overrides: dict[str, Any] = {"log_level": args.log_level}
    if args.source is not None:
        overrides["source"] = source_override(args.source)
    if args.model is not None:
        overrides["model"] = _model_override(args.model)
    if args.detector is not None:
        overrides["detector"] = {"type": args.detector}
    cfg = load_config(args.config, overrides)
    report, boxes = bench.run_bench(cfg, args.frames, keep_boxes=args.boxes is not None)
    print(bench.format_report(report))
    if args.json is not None:
        write_json(args.json, report, sort_keys=True)
    if args.boxes is not None:
        lines = [json.dumps({"frame": i, "boxes": b}) for i, b in boxes]
        write_text_atomic(args.boxes, "\n".join(lines) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fer-edge`` console script.

    Returns:
        Process exit code: 0 on success, the error's ``exit_code`` (2 for bad input) otherwise,
        130 when interrupted during start-up.
    """
    args = build_parser().parse_args(argv)
    return run_command(args.func, args, "fer-edge", f"fer-edge {args.command}")


def run_command(
    func: Callable[[argparse.Namespace], int | None],
    args: argparse.Namespace,
    prog: str,
    who: str | None = None,
) -> int:
    """Run one parsed command the way every fer-* console script does (fer-train too).

    An expected failure prints ``<who>: error: <message>`` to stderr, without a traceback.

    Returns:
        The command's exit code (None counts as 0), the error's ``exit_code`` (2 for bad input),
        or 130 when interrupted.
    """
    try:
        return int(func(args) or 0)
    except FerEdgeError as e:
        print(f"{who or prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
