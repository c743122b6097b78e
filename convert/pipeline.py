"""The ``fer-convert`` job: check, rebuild, quantize, gate on parity, embed metadata, publish.

Nothing is written at the output path until every step has succeeded: the model and its JSON
twin are built in a temporary folder beside the output and moved into place with
``os.replace`` at the end, so a failed conversion or parity gate leaves no file behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.atomic import write_json
from edge.contract import DEFAULT_CONTRACT, LABEL_SETS, PreprocessContract
from edge.errors import ConfigError, DataError, ModelError
from edge.model_meta import ModelMetadata, embed_metadata, write_model

log = logging.getLogger(__name__)

#: Name of the parity report inside ``--report DIR``.
REPORT_NAME = "parity.json"


@dataclass(frozen=True)
class ConvertOptions:
    """What one ``fer-convert`` run does (the CLI flags).

    Attributes:
        model: Trained ``.keras`` file (a registry architecture).
        data: FER2013 CSV: Training rows for calibration, ``val_usage`` rows for parity.
        out: Output ``.tflite`` path (its folder must exist).
        quantize: ``int8`` (default), ``float16``, ``dynamic`` or ``float32``.
        representative: Number of stratified Training faces for int8 calibration.
        max_drop: Largest allowed accuracy drop in percentage points (exit 3 beyond).
        report: Folder to write ``parity.json`` into (created), or None.
        labels: Label set name (``fer2013``/``ferplus``); default from the run's config.json or
            the model's output size.
        ferplus: FERPlus vote CSV, needed for FERPlus-trained models.
        val_usage: Validation split for parity; default from config.json, else PublicTest.
        seed: Seed of the stratified representative sample.
        command: The command line, recorded in the metadata.
    """

    model: Path
    data: Path
    out: Path
    quantize: str = "int8"
    representative: int = 500
    max_drop: float = 1.0
    report: Path | None = None
    labels: str | None = None
    ferplus: Path | None = None
    val_usage: str | None = None
    seed: int = 0
    command: str = ""


def tool_version() -> str:
    """Installed fer-edge version (``0+unknown`` when running from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fer-edge")
    except PackageNotFoundError:
        return "0+unknown"


def _check_paths(opts: ConvertOptions) -> None:
    from convert.quantize import MODES

    if opts.quantize not in MODES:
        raise ConfigError(f"unknown --quantize {opts.quantize!r}; valid: {', '.join(MODES)}")
    if opts.representative < 1:
        raise ConfigError(f"--representative must be >= 1, got {opts.representative}")
    if not opts.model.is_file():
        raise ModelError(f"model file {opts.model} does not exist")
    if not opts.data.is_file():
        raise DataError(f"data file {opts.data} does not exist")
    if opts.out.suffix != ".tflite":
        raise ConfigError(f"output {opts.out} must end in .tflite")
    if not opts.out.parent.is_dir():
        raise ConfigError(f"output folder {opts.out.parent} does not exist; create it first")
    if opts.ferplus is not None and not opts.ferplus.is_file():
        raise DataError(f"FERPlus file {opts.ferplus} does not exist")


@dataclass(frozen=True)
class _Labels:
    mode: str
    names: tuple[str, ...]
    ferplus: Path | None
    ferplus_classes: int


def _resolve_labels(opts: ConvertOptions, config: dict[str, Any] | None, n_out: int) -> _Labels:
    """Label names and how to load them: --labels, else the run's config.json, else output size."""
    options = (config or {}).get("options") or {}
    mode = _label_mode(opts, options.get("labels"), n_out)
    from_config = opts.labels is None and config is not None
    if mode == "ferplus":
        # FERPlus with 7 classes drops contempt (train's --ferplus-classes 7).
        ferplus_classes = int(options.get("ferplus_classes") or 8) if from_config else n_out
        names = LABEL_SETS["ferplus"] if ferplus_classes == 8 else LABEL_SETS["fer2013"]
    else:
        ferplus_classes = 8
        names = LABEL_SETS["fer2013"]
    if from_config and config is not None and config.get("labels"):
        # Runs on a class subset (seed 004's 4 classes) list their labels in output order.
        names = tuple(str(v) for v in config["labels"])
    if len(names) != n_out:
        raise ModelError(
            f"{opts.model} outputs {n_out} classes but labels {mode} have {len(names)} "
            f"({', '.join(names)}); pass the matching --labels"
        )
    ferplus = opts.ferplus
    if ferplus is None and options.get("ferplus") and opts.labels is None:
        ferplus = Path(str(options["ferplus"]))
    if mode == "ferplus" and (ferplus is None or not ferplus.is_file()):
        raise ConfigError(
            f"labels ferplus need the FERPlus vote CSV: pass --ferplus (got {ferplus})"
        )
    return _Labels(mode, names, ferplus, ferplus_classes)


def _label_mode(opts: ConvertOptions, from_run: Any, n_out: int) -> str:
    """The label set's name: --labels, else the run's, else the one with ``n_out`` classes.

    Raises:
        ModelError: no name given and no label set has ``n_out`` classes.
        ConfigError: an unknown name, naming the valid ones.
    """
    mode = opts.labels or from_run
    if mode is None:
        by_size = {len(v): k for k, v in LABEL_SETS.items()}
        if n_out not in by_size:
            raise ModelError(
                f"{opts.model} outputs {n_out} classes and has no config.json naming its labels; "
                f"pass --labels ({', '.join(LABEL_SETS)})"
            )
        mode = by_size[n_out]
    if mode not in LABEL_SETS:
        raise ConfigError(f"unknown label set {mode!r}; valid: {', '.join(LABEL_SETS)}")
    return str(mode)


def _load_sets(opts: ConvertOptions, lab: _Labels, val_usage: str) -> tuple[Any, Any]:
    """Representative Training faces (stratified) and the labelled validation split."""
    from train.data.faceset import select_classes
    from train.data.fer2013 import load_fer2013
    from train.data.sampling import stratified_sample

    train = load_fer2013(opts.data, "Training")
    if len(train) == 0:
        raise DataError(f"{opts.data}: no Training rows for the representative set")
    rep = stratified_sample(train, opts.representative, opts.seed)
    kw: dict[str, Any] = {"labels": lab.mode, "ferplus_path": lab.ferplus}
    if lab.mode == "ferplus":
        kw["ferplus_classes"] = lab.ferplus_classes
    val = load_fer2013(opts.data, val_usage, **kw)
    if tuple(val.label_names) != lab.names:
        val = select_classes(val, lab.names)
    if len(val) == 0:
        raise DataError(
            f"{opts.data}: the {val_usage} split has no rows with labels {list(lab.names)}"
        )
    return rep, val


def _training_section(
    config: dict[str, Any] | None, opts: ConvertOptions, rep: Any, lab: _Labels
) -> dict[str, Any]:
    conv = {
        "command": opts.command,
        "data": str(opts.data),
        "representative": {"n": len(rep), "source": rep.source, "seed": opts.seed},
    }
    if config is None:
        return {
            "note": f"no config.json beside {opts.model.name}",
            "labels": lab.mode,
            "convert": conv,
        }
    options = config.get("options") or {}
    return {
        "labels": lab.mode,
        "data": config.get("data"),
        "command": config.get("command"),
        "seed": options.get("seed"),
        "commit": config.get("commit"),
        "protocol": config.get("protocol"),
        "options": options,
        # A warm-restarted run: where its starting weights came from (the earlier cycle's
        # command and commit), and any --resume continuations; part of the exact provenance.
        "init_from": config.get("init_from"),
        "resumed_with": config.get("resumed_with"),
        # A weight-averaged model: every ingredient checkpoint with its run's command and commit.
        "soup": config.get("soup"),
        "convert": conv,
    }


def _metrics_section(metrics: dict[str, Any] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    keys = (
        "n",
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "weighted_f1",
        "auc_macro",
    )
    out: dict[str, Any] = {k: metrics[k] for k in keys if k in metrics}
    sub = metrics.get("excluding_train_duplicates")
    if isinstance(sub, dict):
        out["excluding_train_duplicates"] = {k: sub[k] for k in keys if k in sub}
    for k in ("usage", "split", "data"):
        if k in metrics:
            out[k] = metrics[k]
    return out


def write_report(report_dir: Path, report: dict[str, Any]) -> Path:
    """Write ``report_dir/parity.json`` atomically (creating the folder)."""
    path = report_dir / REPORT_NAME
    write_json(path, report, sort_keys=True)
    return path


def run_convert(opts: ConvertOptions) -> dict[str, Any]:
    """Run one conversion; return the parity report (also printed/written by the CLI).

    Raises:
        ConfigError, DataError, ModelError: bad input (exit 2), nothing written.
        ParityError: the converted model lost more than ``max_drop`` points (exit 3); the
            report is still written to ``opts.report``, the model is not.
    """
    from convert.quantize import convert, quantization_summary
    from convert.rebuild import check_classifier, load_keras, rebuild_tf_keras

    _check_paths(opts)
    model = load_keras(opts.model)
    arch, n_out = check_classifier(model, opts.model)
    config, metrics = _source_run(opts.model, arch)
    lab = _resolve_labels(opts, config, n_out)
    val_usage = (
        opts.val_usage or ((config or {}).get("options") or {}).get("val_usage") or "PublicTest"
    )
    rep, val = _load_sets(opts, lab, val_usage)
    log.info(
        "%s: %d classes (%s), %d representative faces, %d %s faces for parity",
        arch, n_out, lab.mode, len(rep), len(val), val_usage,
    )  # fmt: skip

    fixed = rebuild_tf_keras(model, arch, n_out, rep.images[:32])
    data, info = convert(fixed, opts.quantize, rep.images)
    quantization = quantization_summary(info, opts.quantize, len(rep))
    meta = _metadata(opts, arch, lab, rep, config, metrics, quantization)
    report = _checked_parity(opts, model, embed_metadata(data, meta), val, lab.names, val_usage)
    write_model(opts.out, data, ModelMetadata.from_dict({**meta.to_dict(), "parity": report}))
    return report


def _source_run(checkpoint: Path, arch: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``config.json`` and ``metrics.json`` of the run the checkpoint came from (None when
    absent, or when the run's architecture is not the model's)."""
    from train.runfolder import RunFolder

    folder = RunFolder.of_checkpoint(checkpoint)
    config = folder.read_config()
    if config is not None and config.get("arch") not in (None, arch):
        log.warning(
            "%s says arch %r but the model is %r; ignoring it",
            folder.config_path, config.get("arch"), arch,
        )  # fmt: skip
        return None, None
    return config, folder.read_metrics() if config is not None else None


def _metadata(
    opts: ConvertOptions,
    arch: str,
    lab: _Labels,
    rep: Any,
    config: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    quantization: dict[str, Any],
) -> ModelMetadata:
    """The embedded document (without the parity report, which needs the converted file)."""
    from train.models import get_spec

    contract = PreprocessContract(**{**DEFAULT_CONTRACT.to_dict(), "labels": lab.names})
    contract = PreprocessContract.from_dict(contract.to_dict())
    return ModelMetadata(
        arch=arch,
        seed=get_spec(arch).seed,
        labels=lab.names,
        input_shape=contract.input_shape,
        contract=contract,
        quantization=quantization,
        training=_training_section(config, opts, rep, lab),
        metrics=_metrics_section(metrics),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_version=tool_version(),
    )


def _checked_parity(
    opts: ConvertOptions,
    model: Any,
    tflite: bytes,
    val: Any,
    labels: tuple[str, ...],
    val_usage: str,
) -> dict[str, Any]:
    """The parity report of the converted file against the Keras model, written to
    ``opts.report`` (when set) whether or not the model passes.

    The parity run uses the file with (provisional) metadata: the device code path needs it,
    and the final file differs only in the metadata buffer.

    Raises:
        ParityError: the accuracy dropped by more than ``opts.max_drop``.
    """
    from convert.parity import enforce, parity_report

    tmp = Path(tempfile.mkdtemp(prefix=f".{opts.out.name}.", suffix=".tmp", dir=opts.out.parent))
    try:
        candidate = tmp / opts.out.name
        candidate.write_bytes(tflite)
        report = parity_report(model, candidate, val.images, val.labels, labels, val_usage)
        report["quantization"] = opts.quantize
        try:
            enforce(report, opts.max_drop)
        finally:
            if opts.report is not None:
                write_report(opts.report, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
