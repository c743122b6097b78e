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


def _code_stats(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(REPO / "bench" / "code_stats.py"), *args])


def test_code_stats_counts_def_to_last_line(tmp_path: Path) -> None:
    """bench/code_stats.py measures what it says: lines from ``def`` to the last line, methods
    and nested functions counted on their own; checked on a tree with known answers."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "@decorator\n"
        "def one():\n"  # 2 lines
        "    return 1\n"
        "\n"
        "class C:\n"
        "    def method(self):\n"  # 5 lines, with the nested function's 2
        "        def inner():\n"
        "            pass\n"
        "        x = 1\n"
        "        return x\n"
    )
    r = _code_stats("--root", str(tmp_path), "--json", str(tmp_path / "s.json"), "pkg")
    assert r.returncode == 0, r.stderr
    import json

    s = json.loads((tmp_path / "s.json").read_text())
    got = {f["name"]: f["lines"] for f in s["longest"]}
    assert got == {"one": 2, "C.method": 5, "C.method.inner": 2}
    assert s["functions"] == 3 and s["median"] == 2 and s["largest_modules"][0]["lines"] == 10
    assert _code_stats("--root", str(tmp_path), "--max-module", "9", "pkg").returncode == 1
    assert _code_stats("--root", str(tmp_path), "--max-p90", "4", "pkg").returncode == 1


def test_module_and_function_size_targets() -> None:
    """Issue 18's targets for edge/, train/ and convert/: no module over 600 lines, p90
    function length <= 35 lines (``python3 bench/code_stats.py``; numbers in
    docs/ARCHITECTURE.md)."""
    r = _code_stats("--max-module", "600", "--max-p90", "35")
    assert r.returncode == 0, r.stdout + r.stderr
