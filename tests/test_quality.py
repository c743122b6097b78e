"""Code-quality gates that CI runs as tests: ruff (lint + format), mypy on edge/ and convert/,
and the dependency direction train -> convert -> edge (edge imports neither, nor TensorFlow)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return [exe]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check() -> None:
    r = _run([*_tool("ruff"), "check", "."])
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    r = _run([*_tool("ruff"), "format", "--check", "."])
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_edge_and_convert() -> None:
    r = _run([*_tool("mypy"), "--no-error-summary"])
    assert r.returncode == 0, r.stdout + r.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# The interpreter wrapper may fall back to tf.lite on a workstation, lazily and only there.
TF_FALLBACK_ALLOWED = {"edge/classify/interpreter.py"}


FORBIDDEN = {
    # The device package: nothing from the workstation side, never TensorFlow.
    "edge": {"train", "convert", "tensorflow", "keras", "tf_keras"},
    # Models flow train -> convert -> edge: convert uses train's registry/data/evaluator,
    # train never needs convert.
    "train": {"convert"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    bad = []
    for py in sorted((REPO / package).rglob("*.py")):
        rel = py.relative_to(REPO).as_posix()
        hits = _imports(py) & FORBIDDEN[package]
        if rel in TF_FALLBACK_ALLOWED:
            hits -= {"tensorflow"}
        if hits:
            bad.append(f"{rel}: {sorted(hits)}")
    assert not bad, f"{package} must not import these: " + "; ".join(bad)
