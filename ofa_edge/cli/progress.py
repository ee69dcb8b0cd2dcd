"""Rich progress display for training (stderr), driven by the trainer's events."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from ..train.data import reading_line
from ..train.schedule import Schedule


class TrainingProgress:
    """Two bars: the whole run (steps, ETA) and the current epoch (phase, loss, lr, images/s)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.run_task: TaskID | None = None
        self.epoch_task: TaskID | None = None
        # Redirected to a file, rich draws no live bars: log a plain line now and then instead.
        self.plain = enabled and not self.console.is_terminal
        self.last_plain = 0.0
        self.epoch_label = ""

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def plan(self, schedule: Schedule, steps_per_epoch: int, position: Any) -> None:
        total = schedule.total_epochs * steps_per_epoch
        done = sum(p.epochs for p in schedule.phases[: position.phase]) * steps_per_epoch
        done += position.epoch * steps_per_epoch + position.batch
        self.run_task = self.progress.add_task(f"{schedule.name} run", total=total, completed=done, info="")

    def event(self, kind: str, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if kind == "reading":
            self.console.print(reading_line(info["done"], info["total"], info["folder"]))
        elif kind == "resumed":
            self.console.print(
                f"resuming {info['checkpoint']} (saved {info['saved_at']} on {info['saved_on']}): "
                f"phase {info['phase'] + 1} '{info['phase_name']}', epoch {info['epoch'] + 1}, batch {info['batch']}, "
                f"step {info['step']}"
            )
        elif kind == "epoch_start":
            if self.epoch_task is not None:
                self.progress.remove_task(self.epoch_task)
            description = f"{info['phase']} epoch {info['epoch'] + 1}/{info['epochs']}"
            self.epoch_task = self.progress.add_task(description, total=info["steps"], completed=info["start"], info="")
            self.epoch_label = f"{description}, {info['steps']} steps"
        elif kind == "step" and self.epoch_task is not None:
            text = f"loss {info['loss']:.3f} lr {info['lr']:.4f} {info['images_per_s']:.0f} img/s"
            self.progress.update(self.epoch_task, completed=info["batch"], info=text)
            if self.run_task is not None:
                self.progress.advance(self.run_task)
            if self.plain and time.monotonic() - self.last_plain > 60:
                self.last_plain = time.monotonic()
                self.console.print(f"{self.epoch_label}: step {info['batch']} {text}", soft_wrap=True)
        elif kind == "epoch_end":
            accs = info.get("val_top1")
            summary = f"{info['phase']} epoch {info['epoch'] + 1}: loss {info['loss']:.3f}"
            if accs:
                summary += " | val " + " ".join(f"{k} {v:.1f}" for k, v in accs.items())
            self.console.print(summary, soft_wrap=True)
