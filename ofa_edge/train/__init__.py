"""Training and scoring: data sets and batches, progressive-shrinking schedules (presets and
YAML/TOML files), the trainer
(distillation, resumable checkpoints, DDP), a whole training run, and accuracy of subnets after
BatchNorm recalibration."""

from .._lazy import lazy_exports

_EXPORTS = {
    "ImageDataset": ".data",
    "Normalization": ".data",
    "load_dataset": ".data",
    "split_train_val": ".data",
    "SCHEDULE_NAMES": ".schedule",
    "Schedule": ".schedule",
    "get_schedule": ".schedule",
    "resolve_schedule": ".schedule",
    "load_schedule_file": ".schedule_file",
    "TrainConfig": ".trainer",
    "TrainData": ".trainer",
    "Trainer": ".trainer",
    "final_report": ".trainer",
    "TrainingRun": ".run",
    "train_supernet": ".run",
    "default_flip": ".run",
    "EvalData": ".evaluate",
    "SupernetScorer": ".evaluate",
    "evaluate_arch": ".evaluate",
    "load_split": ".evaluate",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
