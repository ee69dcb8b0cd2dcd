"""Pieces shared by the CLI modules: the stderr console, common options, JSON output."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from ..errors import Interrupted
from ..space.space import SPACE_NAMES

# As wide as the terminal; 160 columns when stderr goes to a file or a pipe (rich would use 80).
# Markup off: messages and table cells carry paths and pip commands such as 'ofa-edge[openvino]',
# which rich would take for a style tag and drop. Styled lines ask for markup and escape what they
# interpolate.
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160, markup=False)
# Listings (a command's tables) go to stdout, so they pipe and page; logs and progress to stderr.
listing = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, markup=False)

SpaceOpt = Annotated[str, typer.Option("--space", "-s", help=f"Search space preset: {', '.join(SPACE_NAMES)}.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout instead of tables.")]
# Commands that score a trained supernet read the data it was trained on unless told otherwise.
ScoredDataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="fashion-mnist, mnist, or a folder with train/CLASS/*.png and test/CLASS/*.png "
        "(default: the data the supernet was trained on).",
    ),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder with the IDX files (default for fashion-mnist: Debian's).")
]
# Backend options, as `profile` takes them; `export` and `deploy` time on the same backend.
OptionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-O",
        help="Backend option KEY=VALUE, repeatable (tflite on a phone: "
        "benchmark_model=PATH, affinity=f0, devices_file=PATH, adb=PATH; tensorrt: trtexec=PATH, gpu=0).",
    ),
]
# -o is --out in every command.
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: see above).")]


# The top level's commands in pipeline order: explore, train, measure, specialise, ship.
PIPELINE_ORDER = ("weights", "space", "arch", "train", "eval", "backends", "profile", "tables", "latency", "predictor",
                  "specialize", "export", "deploy")  # fmt: skip


class PipelineOrderGroup(TyperGroup):
    """Lists commands in :data:`PIPELINE_ORDER` (then any others), not alphabetically."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = list(self.commands)
        rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))


def make_typer(help: str) -> typer.Typer:
    """A command group with plain (click) help: as wide as the terminal (120 columns when piped),
    no type placeholders, commands in pipeline order."""
    return typer.Typer(
        cls=PipelineOrderGroup,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        context_settings={
            "max_content_width": 120,
            "terminal_width": shutil.get_terminal_size((120, 24)).columns,
            "help_option_names": ["-h", "--help"],
        },
    )


def backend_options(pairs: list[str] | None) -> dict[str, Any]:
    """``-O KEY=VALUE`` pairs as a dict (the backend validates keys and values)."""
    from ..errors import OFAEdgeError

    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OFAEdgeError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    return options


def command_line(ctx: typer.Context) -> str:
    """The running command as given, for records such as model cards: its path, its arguments,
    and the options that differ from their defaults."""
    import shlex

    words = ["ofa-edge", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        unset = value in (None, (), []) and param.default in (None, (), [])
        if param.name == "as_json" or value == param.default or unset:
            continue
        if param.param_type_name != "option":
            words += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        elif param.is_flag:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            for item in value if param.multiple else [value]:
                words += [param.opts[0], str(item)]
    return shlex.join(words)


def print_reading(done: int, total: int, folder: str) -> None:
    """Progress of reading a large image folder (train.data.ReadProgress): one line per fifth."""
    from ..train.data import reading_line

    err.print(reading_line(done, total, folder), style="dim")


def fmt_count(n: int) -> str:
    """12.3M, 456.7K: MACs and params at a glance."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


class ProgressBar:
    """A rich progress bar with ETA on stderr (plain lines every 10% when stderr is not a terminal)."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self.description = description
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[label]}"),
            console=err,
            disable=not enabled,
        )
        self.plain = enabled and not err.is_terminal
        self.task: Any = None
        self.last_tenth = -1

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.task is None:
            # Started on the first report, so an error before any work prints only its own line.
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total, completed=done, label="")
            if done:
                err.print(f"{self.description}: resuming, {done} of {total} already measured")
        self.progress.update(self.task, completed=done, total=total, label=label[-60:])
        if done >= total:
            self.progress.stop()  # finished: frees the terminal for the next bar
        tenth = done * 10 // max(total, 1)
        if self.plain and tenth != self.last_tenth:
            self.last_tenth = tenth
            err.print(f"{self.description}: {done}/{total}")


@contextmanager
def resumable(what: str) -> Iterator[None]:
    """Ctrl-C in a resumable job becomes one line saying it stopped and how to resume (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"{what} stopped; what was measured is saved: run the same command again to resume") from None
