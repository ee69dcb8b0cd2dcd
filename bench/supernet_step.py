"""Training-step throughput: the supernet with an arch active vs. the extracted static subnet
(vs. the reference OFA implementation when the ``ofa`` package is installed), side by side.

One step = forward + backward + SGD (Nesterov) on a fixed batch. The models are timed in
interleaved rounds (A, B, C, A, B, C, ...) so that drift on a shared machine hits them alike;
each model's time is the median over all its timed steps.

    python bench/supernet_step.py                 # batch 64, 32 px, 2 threads, channels-last
    python bench/supernet_step.py --threads 1 --memory-format contiguous

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from ofa_edge import SPACE_NAMES, OFAMobileNetV3, get_space
from ofa_edge.nn.resnet import OFAResNet
from ofa_edge.space.resnet import RESNET_SPACE_NAMES, get_resnet_space


def make_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    return step


def time_interleaved(
    steps: dict[str, Callable[[], None]], warmup: int, rounds: int, per_round: int
) -> dict[str, list[float]]:
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(per_round):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return times


# The reference implementation's supernet class and constructor arguments for each official space.
_REFERENCE = {
    "mbv3-w1.0": ("ofa_mbv3", "OFAMobileNetV3", {"width_mult": 1.0}),
    "mbv3-w1.2": ("ofa_mbv3", "OFAMobileNetV3", {"width_mult": 1.2}),
    "proxyless-w1.3": ("ofa_proxyless", "OFAProxylessNASNets", {"width_mult": 1.3, "bn_param": (0.1, 1e-3)}),
    "resnet50": ("ofa_resnets", "OFAResNets", {"depth_list": [0, 1, 2], "expand_ratio_list": [0.2, 0.25, 0.35],
                                               "width_mult_list": [0.65, 0.8, 1.0]}),
}  # fmt: skip
_MBCONV_ARGS = {"ks_list": [3, 5, 7], "expand_ratio_list": [3, 4, 6], "depth_list": [2, 3, 4]}


def reference_model(space_name: str, arch) -> nn.Module | None:
    """The reference implementation's supernet of an official space with ``arch`` active, or None
    (no ``ofa`` package, or a space the reference does not build)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tests/ (its import stand-ins)
    try:
        from tests.reference_oracle import reference_module
    except ImportError:
        return None
    if space_name not in _REFERENCE:
        return None
    module_name, class_name, kwargs = _REFERENCE[space_name]
    module = reference_module(f"ofa.imagenet_classification.elastic_nn.networks.{module_name}")
    if module is None:
        return None
    defaults = {} if space_name == "resnet50" else _MBCONV_ARGS
    ref = getattr(module, class_name)(**defaults, **kwargs)  # dropout: the class default, as our spaces
    ref.set_active_subnet(**{k: v for k, v in arch.to_dict().items() if k != "r"})
    return ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv3-w1.0", choices=[*SPACE_NAMES, *RESNET_SPACE_NAMES])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--no-reference", action="store_true", help="Skip the reference implementation.")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.memory_format == "channels_last" else torch.contiguous_format
    resnet = args.space in RESNET_SPACE_NAMES
    space = get_resnet_space(args.space) if resnet else get_space(args.space)
    images = torch.randn(args.batch, space.in_channels, args.resolution, args.resolution).to(memory_format=fmt)
    labels = torch.randint(0, space.num_classes, (args.batch,))

    results = []
    # The arch's own resolution field must be valid for the space; the batch sets the real size.
    for label, arch in (("max", space.max_arch()), ("random(seed 0)", space.sample(0))):
        supernet = OFAResNet(space) if resnet else OFAMobileNetV3(space)
        supernet.set_active(arch)
        static = supernet.get_subnet()
        models: dict[str, nn.Module] = {"supernet": supernet, "static subnet": static}
        ref = None if args.no_reference else reference_model(args.space, arch)
        if ref is not None:
            models["reference supernet"] = ref
        for model in models.values():
            model.train().to(memory_format=fmt)
        steps = {name: make_step(model, images, labels) for name, model in models.items()}
        times = time_interleaved(steps, args.warmup, args.rounds, args.per_round)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        row = {
            "arch": label,
            "macs_per_image": space.macs(arch) * (args.resolution / arch.r) ** 2,
            "median_step_ms": {name: round(1000 * m, 2) for name, m in medians.items()},
            "images_per_s": {name: round(args.batch / m, 1) for name, m in medians.items()},
            "supernet_over_static": round(medians["supernet"] / medians["static subnet"], 3),
        }
        if ref is not None:
            row["supernet_over_reference"] = round(medians["supernet"] / medians["reference supernet"], 3)
        results.append(row)

    table = Table(
        title=f"training step, {args.space}, batch {args.batch}, {args.resolution} px, "
        f"{args.threads} threads, {args.memory_format}"
    )
    for column in ("arch", "supernet ms", "static ms", "reference ms", "super/static", "super/reference"):
        table.add_column(column)
    for row in results:
        ms = row["median_step_ms"]
        table.add_row(
            row["arch"],
            f"{ms['supernet']:.1f}",
            f"{ms['static subnet']:.1f}",
            f"{ms['reference supernet']:.1f}" if "reference supernet" in ms else "-",
            f"{row['supernet_over_static']:.3f}",
            f"{row['supernet_over_reference']:.3f}" if "supernet_over_reference" in row else "-",
        )
    Console(stderr=True, width=110).print(table)
    payload = {
        "benchmark": "supernet_step",
        "space": args.space,
        "batch": args.batch,
        "resolution": args.resolution,
        "threads": args.threads,
        "memory_format": args.memory_format,
        "timed_steps_per_model": args.rounds * args.per_round,
        "torch": torch.__version__,
        "results": results,
    }
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
