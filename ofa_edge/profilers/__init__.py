"""Latency backends, found through the ``ofa_edge.backends`` entry-point group.

Built-in backends register there in ofa-edge's own ``pyproject.toml``; a third-party package adds
one the same way, without forking::

    [project.entry-points."ofa_edge.backends"]
    mynpu = "my_package.npu:NpuBackend"

A backend class implements :class:`~ofa_edge.profilers.base.Backend` and is constructed with
``(device=..., threads=..., precision=..., **options)``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ..errors import OFAEdgeError
from .base import Backend, BackendInfo, BackendUnavailable, Measurement

ENTRY_POINT_GROUP = "ofa_edge.backends"

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendInfo",
    "BackendUnavailable",
    "Measurement",
    "backend_names",
    "list_backends",
    "load_backend_class",
    "make_backend",
]


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    return sorted(_entry_points())


def load_backend_class(name: str) -> type:
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is ofa-edge installed? pip install -e .)"
        raise OFAEdgeError(f"unknown backend '{name}' (known: {known})")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken third-party plugin must not take the CLI down with a traceback
        raise OFAEdgeError(f"backend '{name}' failed to load from {eps[name].value}: {exc}") from None


def make_backend(
    name: str, device: str | None = None, threads: int = 1, precision: str = "fp32", **options: Any
) -> Backend:
    """Construct backend ``name``; bad precision or options give one clear line."""
    cls = load_backend_class(name)
    precisions = getattr(cls, "precisions", ())
    if precision not in precisions:
        raise OFAEdgeError(
            f"backend '{name}' does not support precision '{precision}' (supported: {', '.join(precisions)})"
        )
    if threads < 1:
        raise OFAEdgeError(f"threads must be at least 1, got {threads}")
    accepted = _options_of(cls)
    if accepted is not None and (unknown := sorted(set(options) - set(accepted))):
        known = ", ".join(accepted) or "none"
        raise OFAEdgeError(f"backend '{name}' has no option {', '.join(map(repr, unknown))} (its options: {known})")
    kwargs: dict[str, Any] = {"threads": threads, "precision": precision, **options}
    if device is not None:
        kwargs["device"] = device
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise OFAEdgeError(f"backend '{name}': {exc}") from None
    except ValueError as exc:
        raise OFAEdgeError(f"backend '{name}': {exc}") from None


def _options_of(cls: type) -> list[str] | None:
    """The backend-specific keyword arguments of ``cls`` (its -O options); None when it takes
    ``**options`` (a plugin that checks its own) or its signature cannot be read."""
    import inspect

    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.name not in ("device", "threads", "precision")]


def list_backends() -> list[dict[str, Any]]:
    """Every registered backend: name, whether it runs here, its runtime version (or why not, with
    the install command), and its precisions."""
    rows = []
    for name in backend_names():
        try:
            cls = load_backend_class(name)
            ok, detail = cls().availability()
            precisions = list(getattr(cls, "precisions", ()))
        except OFAEdgeError as exc:
            ok, detail, precisions = False, str(exc), []
        rows.append({"backend": name, "available": ok, "detail": detail, "precisions": precisions})
    return rows
