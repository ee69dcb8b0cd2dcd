"""CLI commands for named weights: ``weights list|fetch``.

The only commands that touch the network: every other command finds named weights in the cache
folder (or the package) and, when they are absent, says how to fetch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import CheckpointError, OFAEdgeError
from .common import JsonOpt, emit_json, err, listing, make_typer

weights_app = make_typer(
    "Named supernet weights: list them, fetch one. Only 'weights fetch' downloads; every command that "
    "takes --supernet takes a name too, and finds the file in the cache folder ($OFA_EDGE_HOME/weights, "
    "default ~/.cache/ofa-edge/weights).\n\n"
    "\b\nExamples:\n"
    "  ofa-edge weights list\n"
    "  ofa-edge weights fetch ofa_mbv3_d234_e346_k357_w1.2\n"
    "  ofa-edge specialize --supernet ofa_mbv3_d234_e346_k357_w1.2 --table note10 --budget 25ms"
)


def _status(entry: Any) -> tuple[str, Path | None]:
    """bundled / present / absent, and the local file where there is one."""
    from ..hub.cache import cached_path

    if entry.bundled is not None:
        return "bundled", entry.bundled
    path = cached_path(entry)
    return ("present", path) if path.is_file() else ("absent", None)


def _row(entry: Any) -> dict[str, Any]:
    status, path = _status(entry)
    size = path.stat().st_size if path is not None and path.is_file() else entry.size
    return {
        "name": entry.name, "space": entry.space, "status": status, "path": str(path) if path else None,
        "size": size, "url": entry.url, "sha256": entry.sha256, "licence": entry.licence,
        "predictor": entry.predictor, "table": entry.table, "description": entry.description,
    }  # fmt: skip


def _fmt_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


@weights_app.command("list")
def weights_list(as_json: JsonOpt = False) -> None:
    """List the named weights: space, whether they are here, size, licence, default predictor and table.

    \b
    Examples:
      ofa-edge weights list
      ofa-edge weights list --json | jq '.weights[] | select(.status == "absent") | .name'
    """
    from ..hub.cache import weights_dir
    from ..hub.registry import REGISTRY

    rows = [_row(entry) for entry in REGISTRY.values()]
    if as_json:
        emit_json({"weights": rows, "cache": str(weights_dir())})
        return
    table = Table("name", "space", "status", "size", "licence", "predictor", "table")
    table.columns[2].overflow = "fold"  # the whole path: it is where a copied file goes
    for r in rows:
        status = f"{r['status']} ({r['path']})" if r["status"] == "present" else r["status"]
        table.add_row(r["name"], r["space"], status, _fmt_size(r["size"]), r["licence"], r["predictor"] or "-",
                      r["table"] or "-")  # fmt: skip
    listing.print(table)
    err.print(f"cache folder: {weights_dir()} (set OFA_EDGE_HOME to move it); fetch with 'ofa-edge weights fetch NAME'")


@weights_app.command("fetch")
def weights_fetch(
    name: Annotated[str, typer.Argument(help="A name from 'ofa-edge weights list'.")],
    url: Annotated[
        str | None, typer.Option("--url", help="Download from this mirror instead of the registered URL.")
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", help="Refuse a file whose sha256 differs (default: the registered one, where known)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download named weights into the cache folder, then check that they load.

    An interrupted download keeps NAME.part in the cache folder: the same command again resumes it.
    A file already there (fetched before, or copied in from another machine under the same name)
    is checked, not downloaded again. The command prints the file's sha256, for --sha256 elsewhere.

    \b
    Examples:
      ofa-edge weights fetch ofa_mbv3_d234_e346_k357_w1.0
      ofa-edge weights fetch ofa_mbv3_d234_e346_k357_w1.0 --sha256 HEX      (refuse any other file)
      ofa-edge weights fetch ofa_mbv3_d234_e346_k357_w1.0 --url https://mirror.example/ofa/ofa_mbv3_d234_e346_k357_w1.0
      OFA_EDGE_HOME=/data/ofa-edge ofa-edge weights fetch ofa_mbv3_d234_e346_k357_w1.2
    """
    from ..hub.fetch import fetch
    from ..hub.registry import get_entry

    entry = get_entry(name)
    if entry.bundled is not None:
        raise OFAEdgeError(f"{name} ships with the package ({entry.bundled}): there is nothing to fetch")
    # No log line before the download: a failure is then the only line on stderr (a terminal
    # shows the progress bar meanwhile).
    path = fetch(entry, url=url, sha256=sha256)
    _check_loads(path, entry.space)
    digest = _sha256(path)
    if as_json:
        emit_json(_row(entry) | {"sha256": digest})
        return
    err.print(f"{name}: {path} ({_fmt_size(path.stat().st_size)}, sha256 {digest}), loads as a {entry.space} supernet")


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_loads(path: Path, space: str) -> None:
    """Read the file back through the safe loader; a file that does not load is removed."""
    from ..nn.checkpoint import load_supernet

    try:
        load_supernet(path, space=space)
    except OFAEdgeError as exc:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"removed {path}: it does not load as a {space} supernet ({exc})") from None
