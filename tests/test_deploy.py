"""Deployment files: scripts parse (and pass shellcheck when installed), the example config is
valid for the Pi and the Jetson, and push-model.sh verifies before it replaces anything.

push-model.sh runs for real against a "device" that is this machine: ssh/scp are replaced by
two tiny shims (``SSH``/``SCP`` environment variables) that run the command / copy the file
locally, and the device's ``fer-edge`` is ``python -m edge`` from this checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCRIPTS = sorted(DEPLOY.glob("*.sh"))


def test_scripts_are_strict_and_parse() -> None:
    assert {p.name for p in SCRIPTS} >= {"install-pi.sh", "install-jetson.sh", "push-model.sh"}
    for p in SCRIPTS:
        text = p.read_text()
        if p.name != "lib.sh":  # sourced by the installers, which set the options
            assert "set -euo pipefail" in text, p
            assert os.access(p, os.X_OK), f"{p} is not executable"
        r = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_clean() -> None:
    r = subprocess.run(
        ["shellcheck", "-x", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_example_config_is_valid_for_pi_and_jetson(tmp_path: Path) -> None:
    pi = load_config(DEPLOY / "config.example.toml")
    assert pi.source.type == "picamera2"
    assert str(pi.model.path) == "/opt/fer-edge/models/current.tflite"
    assert [s.type for s in pi.sinks] == ["mqtt"]
    out = tmp_path / "jetson.toml"
    r = subprocess.run(
        [
            "bash",
            "-c",
            '. deploy/lib.sh && render_config deploy/config.example.toml "$1" > "$2"',
            "render",
            str(DEPLOY / "jetson-source.toml"),
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    jetson = load_config(out)
    assert jetson.source.type == "opencv"
    assert "nvarguscamerasrc" in str(jetson.source.device)  # type: ignore[union-attr]
    assert jetson.model == pi.model and jetson.sinks == pi.sinks


# ---- push-model.sh ------------------------------------------------------------------------------

_SSH = """#!/usr/bin/env bash
# fake ssh: "ssh HOST COMMAND..." runs COMMAND here
echo "ssh $*" >> "$SHIM_LOG"
shift
exec bash -c "$*"
"""
_SCP = """#!/usr/bin/env bash
# fake scp: "scp [-q] SRC... HOST:DST" copies here
echo "scp $*" >> "$SHIM_LOG"
args=()
for a in "$@"; do [[ $a == -q ]] || args+=("$a"); done
dst=${args[-1]}
unset 'args[-1]'
exec cp "${args[@]}" "${dst#*:}"
"""


@pytest.fixture
def device(tmp_path: Path) -> dict[str, object]:
    """Shims, a models folder and the environment for running push-model.sh locally."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, body in (("ssh", _SSH), ("scp", _SCP)):
        p = shims / name
        p.write_text(body)
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "shim.log"
    env = {
        **os.environ,
        "SSH": str(shims / "ssh"),
        "SCP": str(shims / "scp"),
        "SHIM_LOG": str(log),
        "PYTHONPATH": str(REPO),
    }
    return {"env": env, "log": log, "models": tmp_path / "models"}


def push(device: dict[str, object], model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(DEPLOY / "push-model.sh"),
        "--no-sudo",
        "--no-restart",
        "--models-dir",
        str(device["models"]),
        "--fer-edge",
        f"{sys.executable} -m edge",
        *extra,
        str(model),
        "pi@device",
    ]
    env: dict[str, str] = device["env"]  # type: ignore[assignment]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def sidecar(model: Path, **meta: object) -> Path:
    side = model.with_suffix(".json")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    side.write_text(json.dumps({"sha256": sha, "file": model.name, **meta}))
    return side


def test_push_refuses_when_sidecar_sha_differs(device: dict[str, object], tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not the converted model")
    model.with_suffix(".json").write_text(json.dumps({"sha256": "0" * 64}))
    r = push(device, model)
    assert r.returncode != 0
    assert "does not match" in r.stderr and "refusing" in r.stderr
    assert not Path(str(device["log"])).exists()  # never contacted the device
    assert not Path(str(device["models"])).exists()


def test_push_refuses_a_file_the_device_cannot_read_as_a_model(
    device: dict[str, object], tmp_path: Path
) -> None:
    model = tmp_path / "fake.tflite"
    model.write_bytes(b"TFL3" * 100)
    sidecar(model)
    r = push(device, model)
    assert r.returncode != 0, r.stderr
    assert "rejects the model" in r.stderr
    assert "Traceback" not in r.stderr
    assert not Path(str(device["models"])).exists()  # nothing was installed
    log = Path(str(device["log"])).read_text()
    assert "info" in log and "rm -rf /tmp/fer-edge-push." in log  # staging cleaned up


def test_push_installs_verified_model_and_swaps_link(
    device: dict[str, object], tmp_path: Path, model_path: Path
) -> None:
    from edge.cli import model_info

    src = model_path
    model = tmp_path / "bagga.tflite"
    shutil.copy(src, model)
    meta = model_info(model)["metadata"]
    sidecar(model, **meta)
    r = push(device, model)
    assert r.returncode == 0, r.stderr
    models = Path(str(device["models"]))
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    name = f"bagga-{sha[:12]}.tflite"
    assert os.readlink(models / "current.tflite") == name
    assert (models / name).read_bytes() == model.read_bytes()
    assert not (models / "previous.tflite").exists()
    # Idempotent: the same push again changes nothing.
    assert push(device, model).returncode == 0
    assert os.readlink(models / "current.tflite") == name

    # Metadata that disagrees with what the device reads from the file: refused, link kept.
    other = tmp_path / "other.tflite"
    shutil.copy(src, other)
    sidecar(other, **{**meta, "labels": list(reversed(meta["labels"]))})
    r = push(device, other)
    assert r.returncode != 0 and "labels" in r.stderr and "refusing" in r.stderr
    assert os.readlink(models / "current.tflite") == name


# ---- install_models (lib.sh) ----------------------------------------------------------------------

_FAKE_CONFIG = """from pathlib import Path


def default_model_path():
    return Path(__file__).parent / "models" / "default.tflite"
"""


def _fake_install(root: Path, model: bytes) -> Path:
    """A venv under ROOT/opt/fer-edge whose ``edge`` package bundles MODEL (what pip installs)."""
    venv = root / "opt" / "fer-edge" / "venv"
    if not venv.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pkg = Path(purelib) / "edge"
    (pkg / "models").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(_FAKE_CONFIG)
    (pkg / "models" / "default.tflite").write_bytes(model)
    return pkg / "models" / "default.tflite"


def _install_models(root: Path, checkout: Path) -> subprocess.CompletedProcess[str]:
    # Run from a checkout-like folder holding its own `edge` package, as `cd fer-edge &&
    # sudo deploy/install-pi.sh` does: the installed package must win.
    return subprocess.run(
        ["bash", "-c", f'. "{DEPLOY}/lib.sh" && install_models'],
        cwd=checkout,
        env={**os.environ, "FER_EDGE_PREFIX": str(root / "opt" / "fer-edge")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_models_copies_the_installed_model_and_upgrades_the_link(tmp_path: Path) -> None:
    checkout = tmp_path / "home" / "pi" / "fer-edge"
    (checkout / "edge" / "models").mkdir(parents=True)
    (checkout / "edge" / "__init__.py").write_text("")
    (checkout / "edge" / "config.py").write_text(_FAKE_CONFIG)
    (checkout / "edge" / "models" / "default.tflite").write_bytes(b"checkout")
    models = tmp_path / "opt" / "fer-edge" / "models"
    current = models / "current.tflite"

    v1 = b"model v1"
    _fake_install(tmp_path, v1)
    r = _install_models(tmp_path, checkout)
    assert r.returncode == 0, r.stderr
    name1 = f"bundled-{hashlib.sha256(v1).hexdigest()[:12]}.tflite"
    assert os.readlink(current) == name1  # relative, inside the models folder
    assert current.read_bytes() == v1 and not (models / name1).is_symlink()
    # Again: nothing changes.
    r = _install_models(tmp_path, checkout)
    assert r.returncode == 0 and "keeping model" in r.stderr
    assert os.readlink(current) == name1

    # An earlier install linked into the checkout (hidden by ProtectHome, may be deleted).
    current.unlink()
    current.symlink_to(checkout / "edge" / "models" / "default.tflite")
    r = _install_models(tmp_path, checkout)
    assert r.returncode == 0 and "replacing" in r.stderr
    assert os.readlink(current) == name1
    # A dangling link (the checkout was deleted).
    current.unlink()
    current.symlink_to(tmp_path / "gone" / "default.tflite")
    assert _install_models(tmp_path, checkout).returncode == 0
    assert os.readlink(current) == name1

    # Upgrade with a new bundled model: the link follows, previous.tflite keeps the old one.
    v2 = b"model v2"
    _fake_install(tmp_path, v2)
    r = _install_models(tmp_path, checkout)
    assert r.returncode == 0, r.stderr
    name2 = f"bundled-{hashlib.sha256(v2).hexdigest()[:12]}.tflite"
    assert os.readlink(current) == name2 and current.read_bytes() == v2
    assert os.readlink(models / "previous.tflite") == name1

    # A pushed model is never replaced by the bundled one.
    (models / "bagga-0123456789ab.tflite").write_bytes(b"pushed")
    current.unlink()
    current.symlink_to("bagga-0123456789ab.tflite")
    _fake_install(tmp_path, b"model v3")
    r = _install_models(tmp_path, checkout)
    assert r.returncode == 0 and "keeping model" in r.stderr
    assert os.readlink(current) == "bagga-0123456789ab.tflite"
