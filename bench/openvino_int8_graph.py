"""OpenVINO int8: the QDQ ONNX model (what the int8 latency backend timed before) against the
nncf-quantised IR (what ``export --int8`` ships and the backend now times), per corner subnet.

Each subnet is converted four ways: fp32 ONNX (what the fp32 latency backend times), fp32
OpenVINO IR from the PyTorch frontend (what fp32 export ships), int8 QDQ ONNX (``quantize_qdq``,
as for onnxruntime) and int8 OpenVINO IR (``convert_openvino(int8=True)``, nncf). Each is compiled at
1 thread, f32 inference precision. Reported: the compiled graph's executed layers (from the
performance counters), how many run reference (``ref_*``) kernels, how many are reorders, and
the latency of each, timed interleaved in ``--rounds`` passes of ``--runs`` calls (lowest pass
median kept); the ratios compare files timed side by side. Random weights: latency needs none.

    python bench/openvino_int8_graph.py                                   # demo corners at 28 px
    python bench/openvino_int8_graph.py --space mbv3-w1.0 --resolution 224 --corners d2-e3-k3 d4-e6-k7

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ofa_edge import corner_archs, get_space
from ofa_edge.convert.onnx import export_onnx, quantize_qdq
from ofa_edge.convert.openvino import convert_openvino
from ofa_edge.latency.profiling import subnet_model
from ofa_edge.profilers.base import time_interleaved
from ofa_edge.profilers.openvino import OpenVinoBackend

FILES = ("fp32", "fp32_ir", "qdq", "nncf")


def graph_summary(backend: OpenVinoBackend, path: Path) -> dict[str, int]:
    rows = backend.layer_counters(path, runs=3)
    kinds = Counter(r["exec_type"].split("_")[0] for r in rows)
    return {
        "layers": len(rows),
        "reference_kernels": kinds.get("ref", 0),
        "reorders": sum(r["type"] == "Reorder" for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv3-fmnist")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--corners", nargs="+", default=["d2-e3-k3", "d2-e6-k7", "d4-e3-k3", "d4-e6-k7"])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    space = get_space(args.space)
    archs = corner_archs(space, args.resolution)
    backend = OpenVinoBackend(threads=1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ofa-edge-ov-int8-") as folder:
        for name in args.corners:
            module, example = subnet_model(space, archs[name])
            fp32 = export_onnx(module, example, Path(folder) / f"{name}.onnx")
            files = {
                "fp32": fp32,
                "fp32_ir": convert_openvino(module, example, Path(folder) / f"{name}-fp32.xml"),
                "qdq": quantize_qdq(fp32, Path(folder) / f"{name}-qdq.onnx", tuple(example.shape)),
                "nncf": convert_openvino(module, example, Path(folder) / f"{name}-nncf.xml", int8=True),
            }
            measures = [partial(backend.measure, files[kind], args.warmup, args.runs) for kind in FILES]
            ms = {kind: m.median_ms for kind, m in zip(FILES, time_interleaved(measures, args.rounds))}
            graphs = {kind: graph_summary(backend, files[kind]) for kind in FILES}
            rows.append({"corner": name, "resolution": args.resolution, "ms": ms, "graph": graphs,
                         "qdq_over_nncf": ms["qdq"] / ms["nncf"],
                         "fp32_over_nncf": ms["fp32"] / ms["nncf"],
                         "fp32_onnx_over_ir": ms["fp32"] / ms["fp32_ir"]})  # fmt: skip

    table = Table(title=f"OpenVINO int8 graphs, {args.space} at {args.resolution} px, 1 thread (layers / ref kernels)")
    labels = {"fp32": "fp32 ONNX", "fp32_ir": "fp32 IR", "qdq": "QDQ", "nncf": "nncf"}
    columns = ["corner", *(f"{labels[k]} ms" for k in FILES), "QDQ / nncf", "fp32 / nncf", "fp32 ONNX / IR",
               *(f"{labels[k]} graph" for k in FILES)]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        ratios = (r["qdq_over_nncf"], r["fp32_over_nncf"], r["fp32_onnx_over_ir"])
        graphs = (f"{r['graph'][k]['layers']} / {r['graph'][k]['reference_kernels']}" for k in FILES)
        table.add_row(r["corner"], *(f"{r['ms'][k]:.3f}" for k in FILES), *(f"{x:.2f}x" for x in ratios), *graphs)
    Console(stderr=True, width=160).print(table)
    timing = {"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup}
    print(json.dumps({"command": "python " + " ".join(sys.argv), "backend": backend.describe().to_dict(),
                      "timing": timing, "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
