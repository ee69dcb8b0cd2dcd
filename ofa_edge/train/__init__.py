"""Training and scoring: data sets and batches, progressive-shrinking schedules, the trainer
(distillation, resumable checkpoints, DDP), and accuracy of subnets after BN recalibration."""

from .data import ImageDataset, Normalization, load_dataset, split_train_val
from .evaluate import EvalData, SupernetScorer, corner_archs, evaluate_arch
from .schedule import SCHEDULE_NAMES, Schedule, get_schedule
from .trainer import TrainConfig, TrainData, Trainer, final_report

__all__ = ["SCHEDULE_NAMES", "EvalData", "ImageDataset", "Normalization", "Schedule", "SupernetScorer", "TrainConfig",
           "TrainData", "Trainer", "corner_archs", "evaluate_arch", "final_report", "get_schedule", "load_dataset",
           "split_train_val"]  # fmt: skip
