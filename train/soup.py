"""Model soups: one model whose weights are the average of several checkpoints of one architecture.

Checkpoints along one training trajectory (a first cycle and its warm restarts) sit in the same
loss basin, so the average of their weights is itself a good model, often better than each of
them, at no inference cost (Wortsman et al., 2022, "Model soups"). The greedy recipe adds
checkpoints in order of validation accuracy and keeps one only if the soup does not get worse.

Selection uses the validation split the ingredients were selected on (PublicTest), which is the
split the project reports: the same rule as picking a best epoch. Only leak-free runs can be
ingredients, and each one's provenance is copied into the soup's ``config.json``.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import atomic_path
from edge.contract import FER2013_LABELS
from edge.errors import ConfigError
from train.evaluate import evaluate_model, train_twin_rows
from train.predict import load_keras_model, predict_probs
from train.runfolder import RunFolder

log = logging.getLogger(__name__)

METHODS = ("greedy", "uniform")


@dataclass
class SoupOptions:
    """A soup: its ingredient checkpoints, the data to score them on and the run folder."""

    models: list[str]
    data: str
    out: str
    method: str = "greedy"
    val_usage: str = "PublicTest"
    command: str | None = None


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise mean of several models' ``get_weights()`` lists (BatchNorm statistics too).

    Raises:
        ConfigError: if the lists do not have the same shapes (different architectures).
    """
    check_same_shapes(weight_lists)
    return [np.mean(ws, axis=0) for ws in zip(*weight_lists, strict=True)]


def check_same_shapes(weight_lists: list[list[np.ndarray]]) -> None:
    """Raise :class:`ConfigError` unless every ``get_weights()`` list has the same shapes."""
    first = [w.shape for w in weight_lists[0]]
    if any([w.shape for w in other] != first for other in weight_lists[1:]):
        raise ConfigError("the checkpoints have different weight shapes (different --arch)")


def _ingredient_config(path: Path) -> dict[str, Any]:
    """The finished, leak-free run that ``path`` came from (its ``config.json``)."""
    from train.provenance import leak_free_run_config

    return leak_free_run_config(path, "soup ingredient")


def _accuracy(model: Any, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predict_probs(model, images).argmax(axis=1) == labels))


def soup_run(opts: SoupOptions) -> dict[str, Any]:
    """Average the checkpoints into ``opts.out/model.keras`` and evaluate it like a trained run.

    Returns:
        The soup's metrics (``metrics.json``), with ``soup`` describing what was kept.

    Raises:
        ConfigError: fewer than two checkpoints, unknown method, mixed architectures or label
            sets, a leaky ingredient, or an out folder in the way.
        DataError: unreadable data or config.
    """
    from train.data import load_fer2013

    paths, run = [Path(m) for m in opts.models], Path(opts.out)
    base = _check_ingredients(opts, paths, run)
    val = load_fer2013(opts.data, opts.val_usage).require_nonempty(f"{opts.val_usage} split")
    models = [load_keras_model(p) for p in paths]
    weights = [m.get_weights() for m in models]
    check_same_shapes(weights)  # before any scoring
    t0 = time.time()
    accs = [_accuracy(m, val.images, val.labels) for m in models]
    for p, a in zip(paths, accs, strict=True):
        log.info("ingredient %s: %s accuracy %.4f", p, opts.val_usage, a)
    soup = models[0]
    kept = _cook(soup, weights, accs, opts.method, val, paths)
    seconds = time.time() - t0
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(run / "model.keras", suffix=".keras") as tmp:
            soup.save(tmp)
        config = _soup_config(opts, base, paths, accs, kept)
        RunFolder(run).write_config(config)
        twins = train_twin_rows(opts.data, val)
        extra = {
            "train_seconds": round(seconds, 1),
            "params": int(soup.count_params()),
            "soup": {"kept": [str(paths[i]) for i in kept], "ingredient_accuracy": accs},
        }
        metrics = evaluate_model(run / "model.keras", val, run, exclude_rows=twins, extra=extra)
        config["status"] = "complete"
        RunFolder(run).write_config(config)
    except BaseException:
        if created:
            shutil.rmtree(run, ignore_errors=True)
        raise
    log.info(
        "soup of %d/%d checkpoints: %.4f -> %s", len(kept), len(paths), metrics["accuracy"], run
    )
    return metrics


def _check_ingredients(opts: SoupOptions, paths: list[Path], run: Path) -> dict[str, Any]:
    """Refuse a soup that cannot be made; the first ingredient's ``config.json``.

    Raises:
        ConfigError: as :func:`soup_run` says.
    """
    if opts.method not in METHODS:
        raise ConfigError(f"unknown soup method {opts.method!r}; valid: {', '.join(METHODS)}")
    if len(paths) < 2:
        raise ConfigError("a soup needs at least two checkpoints")
    if run.exists() and any(run.iterdir()):
        raise ConfigError(f"{run} exists and is not empty; choose another --out")
    configs = [_ingredient_config(p) for p in paths]
    for key in ("arch", "labels", "contract"):
        values = {json.dumps(c.get(key), sort_keys=True) for c in configs}
        if len(values) > 1:
            raise ConfigError(f"the checkpoints differ in {key!r}: {sorted(values)}")
    base = configs[0]
    if base.get("labels") != list(FER2013_LABELS):
        raise ConfigError("soups are built on FER2013-labelled runs only")
    return base


def _cook(
    soup: Any,
    weights: list[list[np.ndarray]],
    accs: list[float],
    method: str,
    val: Any,
    paths: list[Path],
) -> list[int]:
    """Set ``soup``'s weights by ``method``; the indices of the checkpoints kept, best first.

    ``uniform`` averages all; ``greedy`` adds checkpoints in order of validation accuracy and
    keeps each only if the soup's accuracy does not drop.
    """
    order = sorted(range(len(accs)), key=lambda i: -accs[i])
    if method == "uniform":
        soup.set_weights(average_weights(weights))
        return order
    kept, best = [order[0]], accs[order[0]]
    for i in order[1:]:
        soup.set_weights(average_weights([weights[j] for j in [*kept, i]]))
        acc = _accuracy(soup, val.images, val.labels)
        log.info("soup + %s: %.4f (best so far %.4f)", paths[i], acc, best)
        if acc >= best:
            kept, best = [*kept, i], acc
    soup.set_weights(average_weights([weights[j] for j in kept]))
    return kept


def _soup_config(
    opts: SoupOptions,
    base: dict[str, Any],
    paths: list[Path],
    accs: list[float],
    kept: list[int],
) -> dict[str, Any]:
    """The soup's ``config.json`` (status ``running``): its ingredients and their provenance."""
    from train.provenance import checkpoint_provenance, git_commit

    ingredients = [
        checkpoint_provenance(p) | {"val_accuracy": round(accs[i], 6), "kept": i in kept}
        for i, p in enumerate(paths)
    ]
    config = {key: base.get(key) for key in ("arch", "seed_paper", "kind", "labels", "contract")}
    config.update(
        options={"protocol": "leak-free", "seed": (base.get("options") or {}).get("seed")},
        data=base.get("data"),
        command=opts.command or shlex.join(["fer-train", *sys.argv[1:]]),
        commit=git_commit(),
        soup={"method": opts.method, "val_usage": opts.val_usage, "ingredients": ingredients},
        protocol=(
            f"soup of leak-free runs: weights averaged; ingredients chosen by "
            f"{opts.val_usage} accuracy ({opts.method})"
        ),
        status="running",
    )
    return config
