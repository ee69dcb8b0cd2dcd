"""onnxruntime int8 speed-up of a 1x1 -> depthwise 3x3 -> 1x1 block against its middle channel count.

Why ``pad16`` exists (``ofa_edge/convert/graph_form.py``): onnxruntime's fast int8 depthwise
kernel takes channel counts that are multiples of 16; other counts run a slower generic path.
Each block (32 -> C -> 32 channels, 56 px, batch 1, random weights) is exported to ONNX, quantised
as ``ofa-edge export`` does (``quantize_qdq``), and timed fp32 and int8 at 1 thread: ``--rounds``
passes of ``--runs`` calls, the lowest pass median kept.

    python bench/depthwise_channels.py                       # 64 72 80 112 120 128
    python bench/depthwise_channels.py --channels 96 104 112

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ofa_edge.convert.onnx import export_onnx, quantize_qdq

SIZE = 56
OUTER = 32


class Block(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.expand = torch.nn.Conv2d(OUTER, channels, 1)
        self.depthwise = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.project = torch.nn.Conv2d(channels, OUTER, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.relu(self.depthwise(torch.relu(self.expand(x)))))


def time_ms(path: Path, runs: int, rounds: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.rand(1, OUTER, SIZE, SIZE).astype(np.float32)}
    for _ in range(20):
        session.run(None, feed)
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return min(medians) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 72, 80, 112, 120, 128])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ofa-edge-dw-") as folder:
        files = {}
        for channels in args.channels:
            torch.manual_seed(0)
            example = torch.rand(1, OUTER, SIZE, SIZE)
            fp32 = export_onnx(Block(channels).eval(), example, Path(folder) / f"c{channels}.onnx")
            files[channels] = (fp32, quantize_qdq(fp32, Path(folder) / f"c{channels}-int8.onnx", tuple(example.shape)))
        for channels, (fp32, int8) in files.items():
            a, b = time_ms(fp32, args.runs, args.rounds), time_ms(int8, args.runs, args.rounds)
            rows.append({"channels": channels, "multiple_of_16": channels % 16 == 0, "fp32_ms": a, "int8_ms": b,
                         "speedup": a / b, "int8_us_per_channel": b / channels * 1e3})  # fmt: skip
    table = Table(title=f"1x1-dw3x3-1x1 block at {SIZE} px, onnxruntime, 1 thread")
    for column in ("channels", "fp32 ms", "int8 ms", "int8 speed-up", "int8 us/channel"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["channels"]), f"{r['fp32_ms']:.3f}", f"{r['int8_ms']:.3f}", f"{r['speedup']:.2f}x",
                      f"{r['int8_us_per_channel']:.2f}")  # fmt: skip
    Console(stderr=True).print(table)
    print(json.dumps({"command": "python bench/depthwise_channels.py", "rows": rows}))


if __name__ == "__main__":
    main()
