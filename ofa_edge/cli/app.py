"""The ``ofa-edge`` command line: a thin Typer layer over the library.

Every command takes ``--json`` and then prints exactly one JSON object to stdout; tables, logs and
progress go to stderr. A user error prints one ``error: ...`` line to stderr and exits with 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import Abort, Exit, TyperException

from ..errors import OFAEdgeError
from ..fileio import atomic_write_text
from ..space.arch import Arch, load_arch, save_arch
from ..space.describe import describe_arch
from ..space.space import SPACE_NAMES, SearchSpace, get_space
from ..train.data import ImageDataset, load_dataset
from ..train.schedule import SCHEDULE_NAMES, get_schedule
from ..train.trainer import TrainConfig, TrainData, Trainer, final_report, init_distributed
from .common import JsonOpt, SpaceOpt, emit_json, err
from .latency import register_latency_commands
from .progress import TrainingProgress
from .search import predictor_app

app = typer.Typer(
    help="Once-for-All supernets for edge devices: explore the space, train once, specialise per device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
space_app = typer.Typer(
    help="Inspect the search spaces (presets: " + ", ".join(SPACE_NAMES) + ").", no_args_is_help=True
)
arch_app = typer.Typer(help="Sample and inspect subnet architectures (arch JSON: ks, e, d, r).", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(arch_app, name="arch")
register_latency_commands(app)
app.add_typer(predictor_app, name="predictor")


def _fmt_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


# ---------------------------------------------------------------------- space
@space_app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """List the preset search spaces."""
    spaces = [get_space(name) for name in SPACE_NAMES]
    if as_json:
        emit_json({"spaces": [{"name": s.name, "description": s.description} for s in spaces]})
        return
    table = Table("space", "input", "classes", "resolutions", "description")
    for s in spaces:
        table.add_row(s.name, f"{s.in_channels}ch", str(s.num_classes), _fmt_res(s.resolutions), s.description)
    Console().print(table)


@space_app.command("show")
def space_show(
    name: Annotated[str, typer.Argument(help="Preset name, e.g. mbv3-w1.0.")], as_json: JsonOpt = False
) -> None:
    """Show a space's choices, stage layout, and the size of its largest and smallest subnets."""
    space = get_space(name)
    info = space.to_dict()
    if as_json:
        emit_json(info)
        return
    console = Console()
    console.print(f"[bold]{space.name}[/bold]: {space.description}")
    console.print(
        f"input {space.in_channels}ch, {space.num_classes} classes, resolutions {_fmt_res(space.resolutions)}; "
        f"kernel {list(space.kernel_choices)}, expand {list(space.expand_choices)}, depth {list(space.depth_choices)}"
    )
    table = Table("stage", "width", "stride", "activation", "SE", "blocks")
    table.add_row("stem", str(space.stem_width), str(space.stem_stride), "hswish", "-", "conv 3x3")
    table.add_row("first", str(space.first_block_width), "1", space.first_block_act, "no", "MBConv k3 e1")
    for i, st in enumerate(space.stages, start=1):
        table.add_row(
            str(i),
            str(st.width),
            str(st.stride),
            st.act,
            "yes" if st.se else "no",
            f"{min(space.depth_choices)}-{space.max_depth} MBConv",
        )
    table.add_row(
        "head", f"{space.final_expand_width}/{space.feature_mix_width}", "-", "hswish", "-", "1x1, pool, 1x1, linear"
    )
    console.print(table)
    console.print(
        f"supernet params {info['supernet_params']:,}; MACs max {_fmt_count(info['max_macs'])} "
        f"(at {max(space.resolutions)}), min {_fmt_count(info['min_macs'])} (at {min(space.resolutions)}); "
        f"predictor encoding {info['encoding_size']} features"
    )


def _fmt_res(resolutions: tuple[int, ...]) -> str:
    if len(resolutions) > 4:
        return f"{resolutions[0]}-{resolutions[-1]} step {resolutions[1] - resolutions[0]}"
    return ", ".join(str(r) for r in resolutions)


# ----------------------------------------------------------------------- arch
@arch_app.command("sample")
def arch_sample(
    space: SpaceOpt = "mbv3-fmnist",
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same arch).")] = None,
    largest: Annotated[bool, typer.Option("--max", help="The largest arch instead of a random one.")] = False,
    smallest: Annotated[bool, typer.Option("--min", help="The smallest arch instead of a random one.")] = False,
    resolution: Annotated[int | None, typer.Option("--resolution", "-r", help="Fix the input resolution.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the arch JSON to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print an arch JSON ({"ks", "e", "d", "r"}) from the space: random, --max or --min."""
    sp = get_space(space)
    if largest and smallest:
        raise OFAEdgeError("--max and --min exclude each other")
    arch = sp.max_arch() if largest else sp.min_arch() if smallest else sp.sample(seed)
    if resolution is not None:
        arch = sp.validate(Arch(arch.ks, arch.e, arch.d, resolution))
    if out is not None:
        save_arch(arch, out)
        err.print(f"wrote {out}")
    if not as_json:
        err.print(
            f"{sp.name}: depths {list(arch.d)}, r {arch.r}, MACs {_fmt_count(sp.macs(arch))}, "
            f"params {_fmt_count(sp.params(arch))}"
        )
    # The arch JSON is the product of this command, in both modes, so it can be piped to a file.
    emit_json(arch.to_dict())


@arch_app.command("info")
def arch_info(
    arch_file: Annotated[Path, typer.Argument(help="Arch JSON file.", metavar="ARCH.json")],
    space: SpaceOpt = "mbv3-fmnist",
    as_json: JsonOpt = False,
) -> None:
    """Depths, kernels, expand ratios, resolution, MACs and params of an arch (validated against the space)."""
    sp = get_space(space)
    arch = sp.validate(load_arch(arch_file))
    info = describe_arch(sp, arch)
    if as_json:
        emit_json(info)
        return
    console = Console()
    console.print(
        f"[bold]{arch_file}[/bold] in {sp.name}: resolution {arch.r}, depths {list(arch.d)}, "
        f"MACs {_fmt_count(info['macs'])}, params {_fmt_count(info['params'])}"
    )
    table = Table("stage", "depth", "kernels", "expands", "widths (mid)")
    for stage in info["stages"]:
        table.add_row(
            str(stage["stage"]),
            str(stage["depth"]),
            str(stage["kernels"]),
            str(stage["expands"]),
            str(stage["mid_channels"]),
        )
    console.print(table)


# ---------------------------------------------------------------------- train
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (default: all cores).")]
DataOpt = Annotated[
    str,
    typer.Option("--data", help="fashion-mnist, mnist, or a folder with train/CLASS/*.png and test/CLASS/*.png."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder with the IDX files (default for fashion-mnist: Debian's).")
]


def _load_split(data: str, split: str, data_dir: Path | None, space: SearchSpace) -> ImageDataset:
    return load_dataset(data, split, data_dir, size=max(space.resolutions), channels=space.in_channels)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, logs, final weights.")],
    space: SpaceOpt = "mbv3-fmnist",
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    schedule: Annotated[str, typer.Option(help=f"Schedule: {', '.join(SCHEDULE_NAMES)}.")] = "fmnist",
    seed: Annotated[int, typer.Option(help="Seed of the split, data order, archs and dropout.")] = 0,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Start from a trained supernet ('demo', an ofa-edge or an official OFA file) instead of "
            "random weights, e.g. --schedule fmnist-sandwich --init-from demo to train the demo further. "
            "One trained for other classes gives all its weights but the classifier's.",
        ),
    ] = None,
    threads: ThreadsOpt = None,
    checkpoint_every: Annotated[int, typer.Option(help="Also checkpoint every N steps.")] = 50,
    report: Annotated[bool, typer.Option(help="Score the 8 corner subnets on the test split at the end.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a supernet with progressive shrinking. Re-run the same command to resume after a stop.

    Under torchrun (--nproc_per_node=N) the same command trains with DistributedDataParallel.
    """
    sp = get_space(space)
    sched = get_schedule(schedule)
    if threads is not None:
        torch.set_num_threads(threads)
    distributed = init_distributed()
    rank = torch.distributed.get_rank() if distributed else 0
    dataset = _load_split(data, "train", data_dir, sp)
    if dataset.channels != sp.in_channels:
        raise OFAEdgeError(f"{data} has {dataset.channels}-channel images; space {sp.name} takes {sp.in_channels}")
    if len(dataset.classes) != sp.num_classes:
        sp = sp.with_classes(len(dataset.classes))
        if rank == 0:
            err.print(f"note: {data} has {sp.num_classes} classes, so the classifier gets {sp.num_classes} outputs")
    train_data = TrainData.from_dataset(dataset, sched, seed, flip=data != "mnist")
    config = TrainConfig(
        sp, sched, out, data_name=data, seed=seed, init_from=init_from, checkpoint_every=checkpoint_every
    )
    started = time.perf_counter()
    progress = TrainingProgress(enabled=rank == 0)
    trainer = Trainer(config, train_data, on_event=progress.event)  # checks its input before the bars start
    if trainer.init_new_classifier and rank == 0:
        err.print(f"note: {init_from} was trained for other classes; all its weights but the classifier's are used")
    with progress:
        progress.plan(sched, trainer.loader.batches_per_epoch(), trainer.position)
        summary = trainer.run()
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    if report and rank == 0:
        test = _load_split(data, "test", data_dir, sp)
        if sched.test_images is not None:
            test = test.subset(torch.arange(min(sched.test_images, len(test))))
        calibration = train_data.train.subset(torch.arange(min(sched.bn_calibration_images, len(train_data.train))))
        err.print(f"scoring the corner subnets on {len(test)} test images ...")
        summary["test_top1"] = final_report(trainer.net, calibration, test, train_data.normalization)
        atomic_write_text(out / "report.json", json.dumps(summary, indent=2) + "\n")
    if rank != 0:
        return
    if as_json:
        emit_json(summary)
        return
    err.print(f"done: {out / 'supernet.safetensors'} ({summary['steps']} steps, {summary['wall_s']:.0f} s)")
    for resolution, accs in summary.get("test_top1", {}).items():
        err.print(f"test top-1 at {resolution} px: " + ", ".join(f"{k} {v:.2f}" for k, v in accs.items()))


@app.command("eval")
def evaluate(
    arch_file: Annotated[Path, typer.Option("--arch", help="Arch JSON.", metavar="ARCH.json")],
    supernet: Annotated[
        str, typer.Option("--supernet", help="Supernet checkpoint, or 'demo' for the shipped Fashion-MNIST one.")
    ] = "demo",
    data: DataOpt = "fashion-mnist",
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
    from ..train import SupernetScorer

    if threads is not None:
        torch.set_num_threads(threads)
    scorer = SupernetScorer.open(supernet, data, data_dir, split, seed, val_images, calibration_images)
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
        err.print(f"top-1 on {split} ({scorer.images} images): {top1:.2f}%  (MACs {_fmt_count(result['macs'])})")


# ----------------------------------------------------------------------- main
def _fail(message: str, code: int = 2) -> int:
    # Plain write, not rich: rich would wrap a long message over several lines.
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="ofa-edge")
    except OFAEdgeError as exc:
        return _fail(str(exc))
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        return _fail(f"{exc.format_message()} (see --help)")
    except Exit as exc:
        return exc.exit_code
    except Abort:
        return _fail("aborted", code=130)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
