"""Pieces shared by the CLI modules: the stderr console, common options, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from .space import SPACE_NAMES

err = Console(stderr=True, soft_wrap=True)

SpaceOpt = Annotated[str, typer.Option("--space", "-s", help=f"Search space preset: {', '.join(SPACE_NAMES)}.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout instead of tables.")]


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
