"""CLI commands to train and score a supernet: ``train`` and ``eval``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..space.arch import load_arch
from ..train.schedule import SCHEDULE_NAMES
from .common import DataDirOpt, JsonOpt, ScoredDataOpt, SpaceOpt, emit_json, err, fmt_count, print_reading

# ---------------------------------------------------------------------- train
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (default: all cores).")]
DataOpt = Annotated[
    str,
    typer.Option("--data", help="fashion-mnist, mnist, or a folder with train/CLASS/*.png and test/CLASS/*.png."),
]


def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, logs, final weights.")],
    space: SpaceOpt = "mbv3-fmnist",
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    schedule: Annotated[
        str,
        typer.Option(
            help=f"A preset ({', '.join(SCHEDULE_NAMES)}; its phases those of the space's family: kernel, depth, "
            "expand for MobileNetV3 and ProxylessNAS, depth, expand, width for ResNet) or a schedule file (.yaml, "
            ".yml, .toml) with the same fields: phases, batch size, init_from, teacher (docs/training.md).",
        ),
    ] = "fmnist",
    seed: Annotated[int, typer.Option(help="Seed of the split, data order, archs and dropout.")] = 0,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Start from these weights instead of the schedule's init_from (default: random weights): "
            "'demo', an ofa-edge or an official OFA file. One trained for other classes gives all its "
            "weights but the classifier's.",
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher",
            help="Distil from this instead of the schedule's teacher (default: the run's own full net): a "
            "supernet file (its largest subnet teaches), a net trained alone (bench/alone.py), or init_from "
            "(the init weights' largest subnet, BatchNorm recalibrated at each resolution).",
        ),
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help="Random horizontal flips (default: on, except for mnist digits)."),
    ] = None,
    threads: ThreadsOpt = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N, or auto (CUDA when present). A run resumes on another device.")
    ] = "cpu",
    autocast: Annotated[
        str, typer.Option(help="off, or bf16: mixed-precision forward passes (a GPU, or a CPU with AMX/AVX-512 BF16).")
    ] = "off",
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Also checkpoint every N steps.")] = 50,
    report: Annotated[bool, typer.Option(help="Score the 8 corner subnets on the test split at the end.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a supernet with progressive shrinking. Re-run the same command to resume after a stop.

    Under torchrun (--nproc_per_node=N) the same command trains with DistributedDataParallel.
    """
    from contextlib import nullcontext

    import torch

    from ..fileio import check_output_folder, exclusive
    from ..train.run import TrainingRun
    from .progress import TrainingProgress

    if threads is not None:
        torch.set_num_threads(threads)
    # Rank 0 alone draws and holds the run folder (torchrun sets RANK before the process group exists).
    first_rank = int(os.environ.get("RANK", "0")) == 0
    check_output_folder(out)
    progress = TrainingProgress(enabled=first_rank)
    with exclusive(out, "run folder") if first_rank else nullcontext():
        run = TrainingRun.prepare(out, space, data, data_dir, schedule, seed, init_from, checkpoint_every, flip,
                                  on_event=progress.event, device=device, autocast=autocast,
                                  teacher=teacher)  # fmt: skip
        if run.rank == 0:
            for note in run.notes:
                err.print(f"note: {note}")
        with progress:
            progress.plan(run.schedule, run.trainer.loader.batches_per_epoch(), run.trainer.position)
            summary = run.run(report, say=err.print if run.rank == 0 else lambda message: None)
    if run.rank != 0:
        return
    if as_json:
        emit_json(summary)
        return
    err.print(f"done: {out / 'supernet.safetensors'} ({summary['steps']} steps, {summary['wall_s']:.0f} s)")
    for resolution, accs in summary.get("test_top1", {}).items():
        err.print(f"test top-1 at {resolution} px: " + ", ".join(f"{k} {v:.2f}" for k, v in accs.items()))


def evaluate(
    arch_file: Annotated[Path, typer.Option("--arch", help="Arch JSON.", metavar="ARCH.json")],
    supernet: Annotated[
        str, typer.Option("--supernet", help="Supernet checkpoint, or 'demo' for the shipped Fashion-MNIST one.")
    ] = "demo",
    data: ScoredDataOpt = None,
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option(help="val (held out of train, as in training) or test.")] = "val",
    seed: Annotated[int | None, typer.Option(help="Seed of the train/val split (default: as in training).")] = None,
    val_images: Annotated[
        int | None, typer.Option(help="Size of the validation split (default: as in training, else 10000).")
    ] = None,
    calibration_images: Annotated[int, typer.Option(help="Training images for BN recalibration.")] = 2000,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recalibrate BatchNorm for an arch, then report its top-1 accuracy on val or test."""
    import torch

    from ..train import SupernetScorer

    if threads is not None:
        torch.set_num_threads(threads)
    scorer = SupernetScorer.open(supernet, data, data_dir, split, seed, val_images, calibration_images,
                                 progress=print_reading)  # fmt: skip
    for warning in scorer.warnings:
        err.print(f"warning: {warning}")
    space = scorer.net.space
    arch = space.validate(load_arch(arch_file))
    top1 = scorer.score(arch)
    result = {"arch": arch.to_dict(), "split": split, "images": scorer.images, "top1": round(top1, 2),
              "macs": space.macs(arch), "params": space.params(arch)}  # fmt: skip
    if as_json:
        emit_json(result)
    else:
        err.print(f"top-1 on {split} ({scorer.images} images): {top1:.2f}%  (MACs {fmt_count(result['macs'])})")
