"""User-facing errors.

Everything a user can get wrong (a bad arch file, a checkpoint for another space, an unknown
preset) raises :class:`OFAEdgeError` with a message that fits on one line. The CLI prints that
line to stderr and exits non-zero; library users can catch the one type.
"""

from __future__ import annotations


class OFAEdgeError(ValueError):
    """A problem with the user's input, explained in one line."""

    exit_code = 2  # what the CLI exits with


class ArchError(OFAEdgeError):
    """An architecture config that does not fit the search space."""


class CheckpointError(OFAEdgeError):
    """A weights file that cannot be loaded safely or does not fit the network."""


class Interrupted(OFAEdgeError):
    """A long job stopped by the user (Ctrl-C); the message says what was kept and how to resume."""

    exit_code = 130
