"""CLI commands to explore the space: ``space list|show`` and ``arch sample|info``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import OFAEdgeError
from ..space.arch import read_arch, save_arch
from ..space.describe import choices_line, describe_arch, layout_rows
from ..space.space import SPACE_NAMES, get_space
from .common import JsonOpt, SpaceOpt, emit_json, err, fmt_count, make_typer

space_app = make_typer("Inspect the search spaces (presets: " + ", ".join(SPACE_NAMES) + ").")
arch_app = make_typer("Sample and inspect subnet architectures (arch JSON: ks, e, d, r; OFA-ResNet: d, e, w, r).")


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
        f"{choices_line(space)}"
    )
    rows = layout_rows(space)
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
    console.print(
        f"supernet params {info['supernet_params']:,}; MACs max {fmt_count(info['max_macs'])} "
        f"(at {max(space.resolutions)}), min {fmt_count(info['min_macs'])} (at {min(space.resolutions)}); "
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
    """Print an arch JSON from the space: random, --max or --min ({"ks", "e", "d", "r"}; OFA-ResNet:
    {"d", "e", "w", "r"})."""
    sp = get_space(space)
    if largest and smallest:
        raise OFAEdgeError("--max and --min exclude each other")
    arch = sp.max_arch() if largest else sp.min_arch() if smallest else sp.sample(seed)
    if resolution is not None:
        arch = sp.validate(replace(arch, r=resolution))
    if out is not None:
        save_arch(arch, out)
        err.print(f"wrote {out}")
    if not as_json:
        err.print(
            f"{sp.name}: depths {list(arch.d)}, r {arch.r}, MACs {fmt_count(sp.macs(arch))}, "
            f"params {fmt_count(sp.params(arch))}"
        )
    # The arch JSON is the product of this command, in both modes, so it can be piped to a file.
    emit_json(arch.to_dict())


# An arch info reads an official net too, whose space is its own unless --space says another.
ArchInfoFile = Annotated[
    Path,
    typer.Argument(help="Arch JSON file, or an official OFA net: its net.config, or its folder.", metavar="ARCH"),
]
ArchInfoSpace = Annotated[
    str | None,
    typer.Option(
        "--space",
        "-s",
        help=f"Search space preset: {', '.join(SPACE_NAMES)} (default: an official net's own, else mbv3-fmnist).",
    ),
]


@arch_app.command("info")
def arch_info(arch_file: ArchInfoFile, space: ArchInfoSpace = None, as_json: JsonOpt = False) -> None:
    """Depths, kernels or widths, expand ratios, resolution, MACs and params of an arch (validated
    against the space)."""
    source = read_arch(arch_file)
    sp, arch = source.fit(get_space(source.space_name(space, default="mbv3-fmnist")))
    if source.note:
        err.print(f"note: {source.note}")
    info = describe_arch(sp, arch)
    if as_json:
        emit_json(info)
        return
    console = Console()
    console.print(
        f"[bold]{escape(str(arch_file))}[/bold] in {sp.name}: resolution {arch.r}, depths {list(arch.d)}, "
        f"MACs {fmt_count(info['macs'])}, params {fmt_count(info['params'])}"
    )
    console.print(stage_table(info["stages"], Table))


def stage_table(stages: list[dict], table_cls: type) -> Table:
    """A table of per-stage summaries (``describe_arch``), one column per key."""
    table = table_cls(*(key.replace("_", " ") for key in stages[0]))
    for stage in stages:
        table.add_row(*(str(value) for value in stage.values()))
    return table
