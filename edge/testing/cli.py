"""Run a fer-* command in a child process, as a user would, from the tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: The folder holding the ``edge`` package under test: the child runs ``python -m`` from there,
#: so it imports the same code as the test that started it.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def run_module(
    module: str, *args: str, timeout: float = 120.0, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` to completion, stdout and stderr captured as text.

    Args:
        module: ``edge`` (``fer-edge``), ``train`` (``fer-train``) or ``convert``.
        args: The command line after the program name.
        timeout: Seconds before the child is killed (:class:`subprocess.TimeoutExpired`).
        env: The child's whole environment (default: this process's).
    """
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=SOURCE_ROOT,
        env=env,
    )
