"""One training run from names to a trained supernet: load the data, fit the classifier to its
classes, build the trainer, train (resuming a stopped run), then score the corner subnets on the
test split into ``report.json``. What ``ofa-edge train`` does, callable from Python."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import OFAEdgeError
from ..fileio import atomic_write_text, check_output_folder, exclusive
from ..space.space import get_space
from .data import NAMED_DATA
from .elastic import AnySpace
from .evaluate import load_split
from .schedule import Schedule, resolve_schedule
from .trainer import TrainConfig, TrainData, Trainer, final_report, init_distributed


def default_flip(data: str) -> bool:
    """Whether horizontal flips augment ``data``: yes, except for digits (a mirrored 2 is no 2)."""
    return data != "mnist"


@dataclass
class TrainingRun:
    """A prepared run: the trainer and its data, plus notes for the user (``notes``)."""

    trainer: Trainer
    data: TrainData
    schedule: Schedule
    data_name: str
    data_dir: Path | None
    out: Path
    rank: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def prepare(
        cls,
        out: Path,
        space: str | AnySpace = "mbv3-fmnist",
        data: str = "fashion-mnist",
        data_dir: Path | None = None,
        schedule: str | Schedule = "fmnist",
        seed: int = 0,
        init_from: str | None = None,
        checkpoint_every: int = 50,
        flip: bool | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        device: str = "cpu",
        autocast: str = "off",
        teacher: str | None = None,
    ) -> TrainingRun:
        """Check every input and build the trainer (one clear error before any work starts).

        ``schedule``: a preset name (with the phases of the space's family), a YAML or TOML schedule
        file, or a :class:`Schedule`;
        ``init_from`` and ``teacher``, when given, replace the schedule's own. The classifier gets
        one output per class of the data; ``flip`` defaults to :func:`default_flip`. Under torchrun
        this joins the process group. ``device``: cpu, cuda, cuda:N or auto; ``autocast``: off or
        bf16 (mixed-precision forward passes).
        """
        sp = get_space(space) if isinstance(space, str) else space
        sched = with_overrides(resolve_schedule(schedule, sp.family), init_from=init_from, teacher=teacher)
        if checkpoint_every < 1:
            raise OFAEdgeError(f"checkpoint interval must be at least 1 step, got {checkpoint_every}")
        distributed = init_distributed()
        rank = torch.distributed.get_rank() if distributed else 0

        def reading(done: int, total: int, folder: str) -> None:
            if on_event is not None:
                on_event("reading", {"done": done, "total": total, "folder": folder})

        dataset = load_split(data, "train", data_dir, sp, reading)
        if dataset.channels != sp.in_channels:
            raise OFAEdgeError(f"{data} has {dataset.channels}-channel images; space {sp.name} takes {sp.in_channels}")
        if len(dataset.classes) < 2:
            raise OFAEdgeError(f"{data} has 1 class ({dataset.classes[0]}): a classifier needs at least 2")
        notes = [f"{data}: {dataset.source}"] if dataset.source else []
        if len(dataset.classes) != sp.num_classes:
            sp = sp.with_classes(len(dataset.classes))
            notes.append(f"{data} has {sp.num_classes} classes, so the classifier gets {sp.num_classes} outputs")
        train_data = TrainData.from_dataset(dataset, sched, seed, flip=default_flip(data) if flip is None else flip)
        location = Path(data) if data not in NAMED_DATA else data_dir
        config = TrainConfig(sp, sched, Path(out), data_name=data, seed=seed,
                             data_location=str(location.resolve()) if location is not None else None,
                             checkpoint_every=checkpoint_every, device=device, autocast=autocast)  # fmt: skip
        kwargs = {"on_event": on_event} if on_event is not None else {}
        trainer = Trainer(config, train_data, **kwargs)  # checks the run folder and the init weights
        if trainer.init_new_classifier:
            reused = "all its weights but the classifier's are used"
            notes.append(f"{sched.init_from} was trained for other classes; {reused}")
        return cls(trainer, train_data, sched, data, data_dir, Path(out), rank, notes)

    def run(self, report: bool = True, say: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
        """Train to the end of the schedule; with ``report``, score the 8 corner subnets at the
        largest and smallest resolution on the test split and write ``report.json``."""
        started = time.perf_counter()
        summary = self.trainer.run()
        summary["wall_s"] = round(time.perf_counter() - started, 1)
        if report and self.rank == 0:
            say("scoring the corner subnets on the test split ...")
            summary["test_top1"] = self.test_report()
            atomic_write_text(self.out / "report.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def test_report(self) -> dict[str, dict[str, float]]:
        space = self.trainer.config.space
        test = load_split(self.data_name, "test", self.data_dir, space)
        if self.schedule.test_images is not None:
            test = test.subset(torch.arange(min(self.schedule.test_images, len(test))))
        images = min(self.schedule.bn_calibration_images, len(self.data.train))
        calibration = self.data.train.subset(torch.arange(images))
        return final_report(self.trainer.net, calibration, test, self.data.normalization)


def with_overrides(schedule: Schedule, init_from: str | None = None, teacher: str | None = None) -> Schedule:
    """``schedule`` with the given ``init_from`` and ``teacher`` in place of its own (command-line
    options); the result is checked like any schedule."""
    changes = {k: v for k, v in (("init_from", init_from), ("teacher", teacher)) if v is not None}
    return replace(schedule, **changes) if changes else schedule


def train_supernet(
    out: Path, schedule: str | Schedule = "fmnist", report: bool = True, **options: Any
) -> dict[str, Any]:
    """Train a supernet with progressive shrinking into the run folder ``out`` (resumes a stopped
    run; another process training into it stops this one with one line); ``options`` are those of
    :meth:`TrainingRun.prepare`. Returns the run's summary."""
    check_output_folder(Path(out))
    with exclusive(Path(out), "run folder"):
        return TrainingRun.prepare(out, schedule=schedule, **options).run(report)
