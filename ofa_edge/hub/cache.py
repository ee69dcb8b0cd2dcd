"""Where named weights live on this machine.

Fetched files go to ``$OFA_EDGE_HOME/weights`` (default: the user cache folder, ``~/.cache/ofa-edge``
on Linux) under the file name of their URL, so a file copied there from another machine is found
as if it had been fetched. Only ``ofa-edge weights fetch`` downloads; everything else looks here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .registry import WeightsEntry, get_entry

HOME_ENV = "OFA_EDGE_HOME"


class NotFetched(CheckpointError):
    """Named weights that are neither bundled nor in the cache folder yet."""


def home() -> Path:
    """ofa-edge's own folder: ``$OFA_EDGE_HOME``, else the user cache folder."""
    if value := os.environ.get(HOME_ENV):
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ofa-edge"))


def weights_dir() -> Path:
    return home() / "weights"


def cached_path(entry: WeightsEntry) -> Path:
    """Where ``entry`` sits once fetched (or copied in by hand)."""
    return weights_dir() / entry.filename


def find_weights(name: str) -> Path:
    """The local file of the weights called ``name``: the bundled file, or the fetched one.

    Never downloads: an absent file is one line saying how to fetch it and where a copied file goes.
    """
    entry = get_entry(name)
    if entry.bundled is not None:
        if not entry.bundled.is_file():
            raise CheckpointError(f"the {entry.name} supernet is missing from this install ({entry.bundled})")
        return entry.bundled
    path = cached_path(entry)
    if path.is_file():
        return path
    raise NotFetched(
        f"weights '{name}' are not on this machine: run 'ofa-edge weights fetch {name}' to download them "
        f"from {entry.url}, or copy the file to {path}"
    )
