"""The options of a training run (``fer-train train``), saved as ``config.json``'s ``options``,
and the checks that refuse a contradictory combination before anything is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge.errors import ConfigError
from train.data.augment import AugmentConfig

#: ``--protocol``: how Training and the validation split are separated (see train/train.py).
PROTOCOLS = ("leak-free", "seed002-leaky")
#: ``--schedule``: seed 004's ReduceLROnPlateau, or cosine decay to 0 over ``epochs``.
SCHEDULES = ("plateau", "cosine")
#: ``--class-weight`` choices (see :attr:`TrainOptions.class_weight`).
CLASS_WEIGHTS = ("none", "sqrt", "balanced")


@dataclass
class TrainOptions:
    """Everything that defines a training run (saved as ``config.json``)."""

    arch: str
    data: str
    out: str
    labels: str = "fer2013"
    ferplus: str | None = None
    ferplus_classes: int = 8
    epochs: int = 50
    batch: int = 64
    limit: int | None = None
    oversample: bool = False
    seed: int = 42
    resume: bool = False
    val_usage: str = "PublicTest"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 1e-3
    patience: int = 7
    label_smoothing: float = 0.0
    soft_labels: bool = False
    #: Weight of the FERPlus vote shares in the training targets, the rest being the FER2013
    #: one-hot: ``(1 - w) * onehot + w * votes``. At w <= 0.5 the FER2013 label stays the target's
    #: argmax, so this is label smoothing that knows which classes annotators confused.
    ferplus_mix: float = 0.0
    classes: tuple[str, ...] | None = None
    #: Per-face loss weight by the face's (FER2013) class: "none", "sqrt" (``(n_max / n_c)
    #: ** 0.5``) or "balanced" (``n_max / n_c``), normalised to a mean of 1 over the training
    #: split. FER2013's disgust is 1.5 % of Training and a fifth of CK+48: models trained
    #: without it rarely say disgust (docs/RESULTS.md). Unlike --oversample it repeats no face.
    class_weight: str = "none"
    folds: int | None = None
    protocol: str = "leak-free"
    #: "plateau" (seed 004's ReduceLROnPlateau) or "cosine" (lr -> 0 over ``epochs``).
    schedule: str = "plateau"
    #: A ``.keras`` model of the same architecture whose weights start this run (a second,
    #: warm-restarted cycle); its run folder's provenance is copied into ``config.json``.
    init_from: str | None = None
    #: Knowledge distillation: ``.keras`` or ``.tflite`` models of finished leak-free runs with
    #: the same labels and contract (see :mod:`train.teachers`). Each augmented training batch's
    #: targets become ``(1 - teacher_mix) * targets + teacher_mix * teachers(batch)``, the mean
    #: of the teachers' softmax (over ``teacher_tta`` views too) softened by
    #: ``teacher_temperature``.
    teacher: list[str] = field(default_factory=list)
    teacher_tta: str = "none"
    teacher_mix: float = 0.5
    teacher_temperature: float = 1.0
    #: ``--distribute`` / ``--per-replica-batch`` / ``--precision`` / ``--backup-every``: see
    #: :mod:`train.distribute`.
    distribute: str | None = None
    per_replica_batch: bool = False
    precision: str = "float32"
    backup_every: int | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        d["classes"] = list(self.classes) if self.classes else None
        return d


def check_run_options(opts: TrainOptions) -> None:
    """Refuse unknown choices and options that contradict each other.

    Raises:
        ConfigError: naming the option and what it needs or accepts.
    """
    if opts.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {opts.protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if opts.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {opts.schedule!r}; valid: {', '.join(SCHEDULES)}")
    _check_ferplus_mix(opts)
    if opts.class_weight not in CLASS_WEIGHTS:
        raise ConfigError(
            f"unknown --class-weight {opts.class_weight!r}; valid: {', '.join(CLASS_WEIGHTS)}"
        )
    if opts.protocol != "leak-free" and opts.folds:
        raise ConfigError("--folds is only available with the leak-free protocol")
    _check_teacher(opts)


def _check_ferplus_mix(opts: TrainOptions) -> None:
    if not 0.0 <= opts.ferplus_mix <= 1.0:
        raise ConfigError(f"--ferplus-mix {opts.ferplus_mix}: must be between 0 and 1")
    if opts.ferplus_mix > 0 and (not opts.ferplus or opts.labels != "fer2013" or opts.soft_labels):
        raise ConfigError(
            "--ferplus-mix needs --ferplus FILE with --labels fer2013 and without --soft-labels"
        )


def _check_teacher(opts: TrainOptions) -> None:
    if opts.teacher and (opts.protocol != "leak-free" or opts.folds):
        raise ConfigError("--teacher is only available for a leak-free run without --folds")
    if not 0.0 < opts.teacher_mix <= 1.0:
        raise ConfigError(f"--teacher-mix {opts.teacher_mix}: must be in (0, 1]")
    if opts.teacher_temperature <= 0:
        raise ConfigError(f"--teacher-temperature {opts.teacher_temperature}: must be > 0")
