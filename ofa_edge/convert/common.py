"""What every converter shares: optional extras (a missing one is one line with the pip command),
quiet converter output, temp names for atomic outputs, and converter failures mapped to the op
and the subnet block that caused them."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from ..errors import OFAEdgeError

# extra name -> the import names it provides (pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "openvino": ("openvino", "nncf"),
    "tflite": ("litert_torch", "ai_edge_litert"),
    "tensorrt": ("tensorrt",),
}

# Calibration data for static int8: batch-1 float32 NCHW arrays, normalised as at evaluation.
CalibrationData = Iterable[np.ndarray]


class MissingExtraError(OFAEdgeError):
    """A format's optional dependencies are not installed."""


class ConversionError(OFAEdgeError):
    """A converter refused the model (an op it cannot convert, usually)."""


def pip_command(extra: str) -> str:
    return f"pip install 'ofa-edge[{extra}]'"


def missing_message(module: str, extra: str, purpose: str) -> str:
    package = module.replace("_", "-")
    return f"{package} is not installed ({purpose} needs it): {pip_command(extra)}"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``; when it is missing, one :class:`MissingExtraError` line with the pip command."""
    try:
        with captured_output():  # some converters log at import (absl, oneDNN, torchao)
            return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(missing_message(module, extra, purpose)) from None


def extra_missing(extra: str, purpose: str, modules: tuple[str, ...] | None = None) -> str | None:
    """The one-line message for the first missing module of ``extra`` (None when all are there).
    Looks modules up without importing them (the converters take seconds to import)."""
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return missing_message(module, extra, purpose)
    return None


def temp_name(path: Path, tag: str = "partial") -> Path:
    """A hidden temp name beside ``path`` with the same suffix (converters pick formats by suffix).
    Holds the process id, so a cleanup can tell leftovers of dead runs from a running one's."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Send what Python and C code print (fd 1 and 2) to a buffer, readable after the block.

    Converters log every pass; ``--json`` must print one object to stdout and nothing else. The
    text is kept so that a failure can be explained from it.
    """
    buffer = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                yield buffer
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            buffer.write(sink.read().decode(errors="replace"))


# ------------------------------------------------------------ explaining failures
_OP_PATTERNS = (
    re.compile(r"aten(?:::|\.)(\w+?)(?:\.default|\.\w+)?['\"\s,)]"),  # aten::cummax, aten.cummax.default
    re.compile(r"[Oo]perator '([\w:.]+)'"),
    re.compile(r"operations?: ([\w:.]+)"),
    re.compile(r"op[ _]?type[=: ]+'?([\w:.]+)"),
)


def failing_op(text: str) -> str | None:
    """The op a converter's message names (``cummax`` for ``aten::cummax``), if any."""
    for pattern in _OP_PATTERNS:
        if match := pattern.search(text + " "):
            return match.group(1).removeprefix("aten::").removeprefix("aten.")
    return None


def locate_op(module: nn.Module, example: torch.Tensor, op: str) -> str | None:
    """The qualified name of the submodule of ``module`` that calls aten op ``op`` (from the
    ``nn_module_stack`` of a ``torch.export`` graph), or None."""
    try:
        with captured_output():
            graph = torch.export.export(module.eval(), (example,)).graph
    except Exception:
        return None
    for node in graph.nodes:
        target = str(node.target)
        if node.op == "call_function" and (target.split(".")[1:2] == [op] or target.endswith(f"::{op}")):
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path = list(stack.values())[-1][0]
                return _clean_module_path(path)
    return None


def _clean_module_path(path: str) -> str:
    # torch.export writes L['self'].blocks[3].conv or blocks.3.conv depending on the version.
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\._modules\['(\w+)'\]", r".\1", path)
    return path.strip(".") or "(top level)"


def block_of(path: str) -> int | None:
    match = re.match(r"blocks\.(\d+)", path)
    return int(match.group(1)) if match else None


def conversion_error(
    fmt: str, exc: BaseException, module: nn.Module, example: torch.Tensor, captured: str = ""
) -> ConversionError:
    """One line naming the op a converter refused and where in ``module`` it sits."""
    text = f"{exc}\n{captured}"
    op = failing_op(text)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    if op is None:
        return ConversionError(f"{fmt} conversion failed: {first[:300]}")
    where = locate_op(module, example, op)
    if where is None:
        location = ""
    else:
        block = block_of(where)
        location = f" in block {block} ({where})" if block is not None else f" in {where}"
    return ConversionError(f"{fmt} cannot convert op '{op}'{location}: {first[:200]}")


def convert_guarded(fmt: str, module: nn.Module, example: torch.Tensor):
    """Context manager: converter output captured; any converter exception becomes a
    :class:`ConversionError` naming the op and the block (our own errors pass through)."""
    return _Guard(fmt, module, example)


class _Guard:
    def __init__(self, fmt: str, module: nn.Module, example: torch.Tensor) -> None:
        self.fmt, self.module, self.example = fmt, module, example
        self._capture: contextlib.AbstractContextManager[io.StringIO] | None = None
        self.buffer: io.StringIO | None = None

    def __enter__(self) -> _Guard:
        self._capture = captured_output()
        self.buffer = self._capture.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._capture is not None
        self._capture.__exit__(None, None, None)
        if exc is None or isinstance(exc, (OFAEdgeError, KeyboardInterrupt, SystemExit, MemoryError)):
            return False
        captured = self.buffer.getvalue() if self.buffer is not None else ""
        raise conversion_error(self.fmt, exc, self.module, self.example, captured) from exc


def calibration_batches(data: CalibrationData | None, shape: tuple[int, ...], count: int = 8) -> list[np.ndarray]:
    """Calibration inputs as a list of float32 arrays of ``shape``: ``data`` when given (real
    images), else ``count`` seeded Gaussian batches (enough to time an int8 model; not to ship one)."""
    if data is None:
        rng = np.random.default_rng(0)
        return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    batches = [np.ascontiguousarray(np.asarray(x, dtype=np.float32)).reshape(shape) for x in data]
    if not batches:
        raise OFAEdgeError("int8 calibration needs at least one input")
    return batches
