"""Sub-commands of ``fer-train`` beyond ``models`` (train, evaluate, compare)."""

from __future__ import annotations

import argparse


def add_subcommands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the train/evaluate/compare sub-commands."""
