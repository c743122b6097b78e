"""Where a run's code came from (``config.json``'s ``commit``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """HEAD's commit, suffixed ``-dirty`` when tracked files differ from it (exact provenance)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, cwd=here, check=False
            )
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return None
    return f"{head}-dirty" if git("status", "--porcelain", "--untracked-files=no") else head
