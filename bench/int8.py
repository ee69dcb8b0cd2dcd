"""int8 against fp32 on onnxruntime, OpenVINO and TFLite (this CPU): latency and accuracy.

Latency: OFA-MBv3 w1.0 subnets at 224 px (random weights, BatchNorm statistics set on random
images: latency does not depend on the weights, but int8 scales depend on activation ranges; the
largest, a middle and the smallest subnet), each converted to fp32 and to static int8 with the
format's own quantiser (onnxruntime ``quantize_static`` QDQ, ``nncf.quantize``, ai-edge-quantizer
``static_wi8_ai8``), exactly as ``ofa-edge export`` does, then timed with the format's latency
backend at 1 thread: ``--rounds`` interleaved passes over every file of a backend, ``--warmup``
untimed and ``--runs`` timed calls each; a file's latency is the lowest of its per-pass
medians (the least disturbed pass). int8 variants: ``plain`` (the subnet as it is) and ``forms`` (the export forms
``ofa-edge export`` uses for that format, see ``ofa_edge/convert/graph_form.py``); with
``--variants all`` every form alone too, and for OpenVINO nncf's ``performance`` preset
(symmetric activations) beside the ``mixed`` preset export uses.

Accuracy: a demo subnet (``--demo-arch``, default the k5 e4 d3 subnet at 28 px) exported by
``export_subnet`` to each format, fp32 and int8, scored on the test split (all of it by default).

Diagnostics of each int8 file, to see what falls back to float: onnxruntime, the op types of the
optimised graph and the float ops fed by a DequantizeLinear ("islands"); OpenVINO, the layer types
executed in float (performance counters' exec types without I8/U8); TFLite, the ops left outside
the XNNPACK partitions.

Goals stated in the export issue: int8 >= 1.3x faster than fp32 on onnxruntime and TFLite, >= 2x
on OpenVINO at 224 px; <= 0.5 point accuracy drop on the demo.

What we found and changed (from the diagnostics; timings are the lead's run in BENCHMARKS.md, the
shared CPU gave none worth keeping while this was written):
* onnxruntime: the plain QDQ graph of the smallest w1.0 subnet keeps 28 float islands: 21
  HardSigmoid (onnxruntime splits each HardSwish into HardSigmoid and Mul and has no int8
  HardSigmoid; 6 of them are the SE gates) and 7 ReduceMean (SE and head pooling written as
  ``x.mean``). Pooling written as ``adaptive_avg_pool2d`` exports as GlobalAveragePool, quantised
  to QLinearGlobalAveragePool; hard-swish written as ``(x / 6) * relu6(x + 3)`` becomes
  QLinearMul/QLinearAdd (the Clip folds into the quantisation range). Export uses both ("pool",
  "hswish"): 6 islands are left, the SE gates on 1x1 maps. Rewriting those too ("hsigmoid") adds
  two int8 ops per gate and looked slower in a (noisy) op profile: not used. Note that in
  onnxruntime's op profile the int8 elementwise ops (QLinearMul/QLinearAdd) take a third of the
  time of the QLinearConvs, while fp32 fuses HardSwish into its convolutions: int8 gains least on
  the smallest subnets.
* TFLite: every .tflite (fp32 and int8) has its 7x7 depthwise convolutions written as row bands of
  at most 25 taps by ``convert_tflite`` (XNNPACK runs >25-tap depthwise kernels several times
  slower, 50-1000x in int8; see ``split_large_depthwise``). XNNPACK has no int8 HARD_SWISH. The
  plain int8 file of the demo subnet had 22 XNNPACK
  partitions around 21 HARD_SWISH run by the built-in kernels (the w1.0 smallest subnet: 16 around
  15); with the hard-swish form, one partition and nothing outside it. litert-torch folds
  ``x * relu6(x + 3) / 6``, ``x * relu6(x + 3) * (1/6)`` and ``x * hardsigmoid(x)`` back into
  HARD_SWISH; ``(x / 6) * relu6(x + 3)`` stays as written. Random weights need BatchNorm
  statistics of their own here: with unit-initialised BatchNorm the activation ranges explode and
  XNNPACK refused 13 of 21 int8 ADDs (input/output scale ratio out of its range).
* OpenVINO: nothing runs in float but one fused "Subgraph" (exec type f32); the plain graph is
  kept. Accuracy: nncf's default preset (symmetric activations) lost 0.55 points on 2000 demo test
  images (97.5% top-1 agreement with fp32); hard-swish outputs lie in [-0.375, inf), half of a
  symmetric range is wasted: the ``mixed`` preset (asymmetric activations) lost 0.25 (99.45%) and
  is what export uses. ``--variants all`` times the other preset, to see what it costs.
* Not tried: quantising fewer ops (onnxruntime ``nodes_to_exclude``/``op_types``, nncf
  ``ignored_scope``; ``ExportConfig(int8_options=...)`` passes them through). The int8 method
  for TFLite is ai-edge-quantizer's recipe on the fp32 file; PT2E (``int8_options={"method":
  "pt2e"}``) left QUANTIZE/DEQUANTIZE pairs around the hard-swishes of the demo subnet.

With ``--op-profile``, each runtime's own profiler splits fp32 and int8 kernel time by network
part (depthwise, 1x1 convolutions, activations, squeeze-excite, quantize/dequantize, layout
changes): where int8 gains and where it loses.

    python bench/int8.py                                  # everything, about 10-20 minutes here
    python bench/int8.py --backends onnxruntime,openvino --no-accuracy --op-profile   # where the time goes
    python bench/int8.py --archs min --runs 5 --rounds 2 --no-accuracy     # a quick check that it runs

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.convert.graph_form import FORMS
from ofa_edge.errors import ArchError
from ofa_edge.export.formats import FORMATS, INT8_FORMS, convert_fp32, convert_int8
from ofa_edge.nn import MobileNetV3Subnet, recalibrate_bn
from ofa_edge.profilers import make_backend
from ofa_edge.profilers.base import time_interleaved
from ofa_edge.space.arch import Arch

BACKEND_FORMAT = {"onnxruntime": "onnx", "openvino": "openvino", "tflite": "tflite"}
GOALS = {"onnxruntime": 1.3, "openvino": 2.0, "tflite": 1.3}
ACCURACY_DROP_GOAL = 0.5


def w10_archs(resolution: int, which: list[str]) -> dict[str, Arch]:
    space = get_space("mbv3-w1.0")
    unknown = [name for name in which if name not in ("max", "mid", "min")]
    if unknown:
        raise SystemExit(f"error: --archs takes max, mid and min, not {', '.join(unknown)}")
    mid = Arch((5,) * space.num_slots, (4,) * space.num_slots, (3,) * space.num_stages, resolution)
    try:
        archs = {"max": space.max_arch(resolution), "mid": space.validate(mid), "min": space.min_arch(resolution)}
    except ArchError as exc:
        raise SystemExit(f"error: --resolution: {exc}") from None
    return {name: archs[name] for name in which}


def subnet_with_statistics(space, arch: Arch) -> tuple[MobileNetV3Subnet, torch.Tensor, list[np.ndarray]]:
    """A seeded random-weight subnet, an example input and int8 calibration inputs.

    Its BatchNorm gets statistics of its own (as a trained net has): activations of a sane range,
    so int8 scales, and what the runtimes accept for them, look like a real model's."""
    torch.manual_seed(0)
    net = MobileNetV3Subnet.from_arch(space, arch)
    generator = torch.Generator().manual_seed(0)
    recalibrate_bn(net, [torch.randn(4, 3, arch.r, arch.r, generator=generator) for _ in range(2)])
    net.eval()
    x = torch.randn(1, 3, arch.r, arch.r, generator=generator)
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((1, 3, arch.r, arch.r)).astype(np.float32) for _ in range(8)]
    return net, x, calibration


def shipped_variant(backend: str) -> str:
    """The int8 variant ``ofa-edge export`` writes for this backend's format."""
    return "forms" if INT8_FORMS[BACKEND_FORMAT[backend]] else "plain"


def variants(backend: str, mode: str) -> dict[str, dict[str, Any]]:
    """int8 variants to time: name -> options for ``convert_int8``."""
    chosen = INT8_FORMS[BACKEND_FORMAT[backend]]
    out: dict[str, dict[str, Any]] = {"plain": {"forms": ()}}
    if chosen:
        out["forms"] = {"forms": chosen}
    if mode == "all":
        for form in FORMS:
            out.setdefault(form, {"forms": (form,)})
        if len(chosen) > 1:  # what each of export's forms adds on top of the others
            for form in chosen:
                out[f"forms-no-{form}"] = {"forms": tuple(f for f in chosen if f != form)}
        if backend == "openvino":  # export uses nncf's mixed preset (asymmetric activations): its cost
            out["performance-preset"] = {"forms": (), "preset": "performance"}
    return out


# ---------------------------------------------------------------- diagnostics
def onnx_diagnostics(path: Path) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(folder) / "opt.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    producer = {o: n for n in graph.node for o in n.output}
    islands = collections.Counter(
        n.op_type
        for n in graph.node
        if n.op_type != "DequantizeLinear"
        and any(i in producer and producer[i].op_type == "DequantizeLinear" for i in n.input)
    )
    return {"ops": dict(collections.Counter(n.op_type for n in graph.node)), "float_islands": dict(islands)}


def openvino_diagnostics(path: Path) -> dict[str, Any]:
    be = make_backend("openvino", threads=1, precision="int8")
    layers = be.layer_counters(path, runs=3)
    exec_types = collections.Counter(row["exec_type"] for row in layers)
    float_layers = collections.Counter(
        row["type"] for row in layers if not any(t in row["exec_type"].upper() for t in ("I8", "U8"))
    )
    return {"exec_types": dict(exec_types), "float_layers": dict(float_layers)}


def tflite_diagnostics(path: Path) -> dict[str, Any]:
    from ofa_edge.convert.tflite import op_report

    return op_report(path)


CONV_OPS = ("Conv", "FusedConv", "QLinearConv", "NchwcConv")
CONV_ROLES = (("/se/", "squeeze-excite"), ("depth_conv/", "depthwise conv"),
              ("inverted_bottleneck/", "expand 1x1 conv"), ("point_linear/", "project 1x1 conv"))  # fmt: skip


def node_role(node_name: str, op_type: str) -> str:
    """What part of the network an onnxruntime profile node belongs to, from its module path.

    onnxruntime renames fused nodes after their last output (a fp32 convolution fused with its
    activation is called ``.../act/Relu_output_0_nchwc``), so a convolution is placed by its module
    path and an element-wise op by whether it is an activation, a squeeze-excite op or a residual add."""
    if op_type in ("ReorderInput", "ReorderOutput", "Transpose"):
        return "layout change"
    if op_type in ("QuantizeLinear", "DequantizeLinear"):
        return "quantize / dequantize"
    if op_type in CONV_OPS:
        return next((role for key, role in CONV_ROLES if key in node_name), "stem and head conv")
    if "/se/" in node_name:
        return "squeeze-excite"
    if "/act/" in node_name:
        return "activation (hard-swish)"
    if "/blocks." in node_name and "/Add" in node_name and "/conv/" not in node_name:
        return "residual add"
    return "other (pooling, classifier)"


def onnx_op_profile(path: Path, runs: int = 50, warmup: int = 10) -> dict[str, Any]:
    """Mean per-run kernel time (ms) of an .onnx file by network part and by op type, from
    onnxruntime's own node profiler at 1 thread (the session ``measure`` times)."""
    backend = make_backend("onnxruntime", threads=1)
    with tempfile.TemporaryDirectory() as folder:
        session = backend.session(path, profile_prefix=str(Path(folder) / "profile"))
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
            session.get_inputs()[0].shape).astype(np.float32)}  # fmt: skip
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_role: dict[str, float] = collections.defaultdict(float)
    by_op: dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op = event["args"]["op_name"]
        ms = event["dur"] / 1000 / (warmup + runs)  # the profiler records warm-up runs too
        by_role[node_role(event["name"], op)] += ms
        by_op[op] += ms
    return {"by_role_ms": dict(by_role), "by_op_ms": dict(by_op), "total_ms": sum(by_op.values())}


def openvino_op_profile(path: Path, runs: int = 50) -> dict[str, Any]:
    """Mean per-run time (ms) of an OpenVINO IR by kind of layer, from its performance counters at
    1 thread. The compiled graph's layer names are mostly generated (``Multiply_17027`` after
    BatchNorm folding), so layers are placed by type and kernel (``exec_type``), not by module."""
    by_role: dict[str, float] = collections.defaultdict(float)
    by_op: dict[str, float] = collections.defaultdict(float)
    for row in make_backend("openvino", threads=1).layer_counters(path, runs=runs):
        kind, exec_type = row["type"], row["exec_type"]
        if kind == "GroupConvolution":
            role = "depthwise conv"
        elif kind == "Convolution":
            role = "1x1 conv" if "1x1" in exec_type else "stem and head conv"
        elif kind in ("Subgraph", "Eltwise", "Multiply", "Add", "HSwish", "HSigmoid"):
            role = "element-wise (activation, squeeze-excite, residual)"
        else:
            role = f"other ({kind})"
        by_role[role] += row["real_ms"]
        by_op[f"{kind} [{exec_type}]"] += row["real_ms"]
    return {"by_role_ms": dict(by_role), "by_op_ms": dict(by_op), "total_ms": sum(by_op.values())}


OP_PROFILES = {"onnxruntime": onnx_op_profile, "openvino": openvino_op_profile}


def bench_op_profile(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Kernel time by network part, fp32 against the int8 file export ships, per backend and arch."""
    space = get_space("mbv3-w1.0")
    out: dict[str, Any] = {}
    for backend in [b for b in args.backends if b in OP_PROFILES]:
        fmt = FORMATS[BACKEND_FORMAT[backend]]
        with tempfile.TemporaryDirectory(prefix="ofa-edge-int8-prof-") as folder:
            for name, arch in w10_archs(args.resolution, args.archs).items():
                net, x, calibration = subnet_with_statistics(space, arch)
                fp32 = Path(folder) / f"{name}-fp32{fmt.suffix}"
                int8 = Path(folder) / f"{name}-int8{fmt.suffix}"
                convert_fp32(fmt, net, x, fp32)
                convert_int8(fmt, net, x, fp32, int8, calibration, {"forms": INT8_FORMS[fmt.name]})
                out[f"{backend}/{name}"] = {"fp32": OP_PROFILES[backend](fp32), "int8": OP_PROFILES[backend](int8)}
    for key, profile in out.items():
        backend, name = key.split("/")
        title = f"{backend} kernel time by part, {name} subnet at {args.resolution} px, 1 thread (ms/run)"
        table = Table(title=title)
        for column in ("part", "fp32", "int8 (as exported)", "fp32 / int8"):
            table.add_column(column)
        fp32_ms, int8_ms = profile["fp32"]["by_role_ms"], profile["int8"]["by_role_ms"]
        roles = sorted(set(fp32_ms) | set(int8_ms), key=lambda r: -max(fp32_ms.get(r, 0), int8_ms.get(r, 0)))
        for role in [*roles, "total"]:
            a = profile["fp32"]["total_ms"] if role == "total" else fp32_ms.get(role, 0.0)
            b = profile["int8"]["total_ms"] if role == "total" else int8_ms.get(role, 0.0)
            table.add_row(role, f"{a:.3f}", f"{b:.3f}", f"{a / b:.2f}x" if a and b else "-")
        console.print(table)
    return out


DIAGNOSTICS = {"onnxruntime": onnx_diagnostics, "openvino": openvino_diagnostics, "tflite": tflite_diagnostics}


# -------------------------------------------------------------------- latency
def bench_latency(args: argparse.Namespace, console: Console) -> tuple[list[dict], dict]:
    space = get_space("mbv3-w1.0")
    rows: list[dict[str, Any]] = []
    diagnostics: dict[str, Any] = {}
    for backend in args.backends:
        fmt = FORMATS[BACKEND_FORMAT[backend]]
        backends = {p: make_backend(backend, threads=1, precision=p) for p in ("fp32", "int8")}
        ok, why = backends["int8"].availability()
        if not ok:
            console.print(f"{backend}: skipped ({why})")
            continue
        with tempfile.TemporaryDirectory(prefix="ofa-edge-int8-") as folder:
            files: list[tuple[str, str, str, Path]] = []  # (arch, variant, precision, path)
            for name, arch in w10_archs(args.resolution, args.archs).items():
                net, x, calibration = subnet_with_statistics(space, arch)
                fp32 = Path(folder) / f"{name}-fp32{fmt.suffix}"
                started = time.perf_counter()
                convert_fp32(fmt, net, x, fp32)
                files.append((name, "fp32", "fp32", fp32))
                for variant, options in variants(backend, args.variants).items():
                    path = Path(folder) / f"{name}-int8-{variant}{fmt.suffix}"
                    convert_int8(fmt, net, x, fp32, path, calibration, options)
                    files.append((name, variant, "int8", path))
                    diagnostics[f"{backend}/{name}/{variant}"] = DIAGNOSTICS[backend](path)
                console.print(f"{backend} {name}: converted in {time.perf_counter() - started:.0f} s")
            measures = [partial(backends[precision].measure, path, args.warmup, args.runs)
                        for _, _, precision, path in files]  # fmt: skip
            info = backends["fp32"].describe()
            for (name, variant, precision, _), m in zip(files, time_interleaved(measures, args.rounds)):
                rows.append({"backend": backend, "version": info.version, "arch": name, "variant": variant,
                             "precision": precision, "median_ms": m.median_ms, "p10_ms": m.p10_ms,
                             "p90_ms": m.p90_ms, "samples": m.samples})  # fmt: skip
    return rows, diagnostics


def speedups(rows: list[dict]) -> list[dict]:
    fp32 = {(r["backend"], r["arch"]): r["median_ms"] for r in rows if r["precision"] == "fp32"}
    out = []
    for r in rows:
        if r["precision"] == "int8":
            ratio = fp32[(r["backend"], r["arch"])] / r["median_ms"]
            out.append({"backend": r["backend"], "arch": r["arch"], "variant": r["variant"], "speedup": ratio,
                        "goal": GOALS[r["backend"]], "meets_goal": ratio >= GOALS[r["backend"]]})  # fmt: skip
    return out


# ------------------------------------------------------------------- accuracy
def bench_accuracy(args: argparse.Namespace, console: Console) -> list[dict]:
    from ofa_edge.export import ExportConfig, export_subnet

    arch = Arch.from_dict(json.loads(args.demo_arch))
    out = []
    for backend in args.backends:
        fmt = BACKEND_FORMAT[backend]
        with tempfile.TemporaryDirectory(prefix="ofa-edge-int8-acc-") as folder:
            started = time.perf_counter()
            config = ExportConfig(format=fmt, int8=True, out_dir=folder, test_images=args.test_images,
                                  measure_latency=False)  # fmt: skip
            result = export_subnet(arch, config)
            acc = result.accuracy
            out.append({"backend": backend, "format": fmt, "images": acc["images"], "torch_top1": acc["torch_top1"],
                        "fp32_top1": acc["fp32_top1"], "int8_top1": acc["int8_top1"],
                        "drop_points": acc["int8_drop_points"], "agreement": acc["int8_agreement_with_fp32"],
                        "meets_goal": acc["int8_drop_points"] <= ACCURACY_DROP_GOAL})  # fmt: skip
            console.print(f"{backend}: accuracy in {time.perf_counter() - started:.0f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnxruntime,openvino,tflite")
    parser.add_argument("--archs", default="max,mid,min", help="w1.0 subnets to time: max, mid, min")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--variants", choices=("default", "all"), default="default")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--demo-arch", default=json.dumps({"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 28}))
    parser.add_argument("--test-images", type=int, default=None, help="default: the whole test split")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for conversion and PyTorch scoring")
    parser.add_argument("--op-profile", action="store_true",
                        help="also split kernel time by network part, fp32 against int8 (onnxruntime, openvino)")
    args = parser.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    args.archs = [a for a in args.archs.split(",") if a]
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=150)
    started = time.perf_counter()

    rows, diagnostics = bench_latency(args, console) if args.latency else ([], {})
    ratios = speedups(rows)
    accuracy = bench_accuracy(args, console) if args.accuracy else []
    op_profile = bench_op_profile(args, console) if args.op_profile else {}

    if rows:
        table = Table(title=f"int8 vs fp32 at {args.resolution} px, 1 thread (median ms)")
        for column in ("backend", "arch", "fp32", "int8 variant", "int8", "speedup", "goal"):
            table.add_column(column)
        fp32 = {(r["backend"], r["arch"]): r["median_ms"] for r in rows if r["precision"] == "fp32"}
        for r, s in zip([r for r in rows if r["precision"] == "int8"], ratios):
            table.add_row(r["backend"], r["arch"], f"{fp32[(r['backend'], r['arch'])]:.3f}", r["variant"],
                          f"{r['median_ms']:.3f}", f"{s['speedup']:.2f}x",
                          f"{s['goal']}x {'ok' if s['meets_goal'] else 'MISSED'}")  # fmt: skip
        console.print(table)
        for key, value in diagnostics.items():
            console.print(f"{key}: {json.dumps(value)}", markup=False)
    if accuracy:
        table = Table(title="demo subnet accuracy, Fashion-MNIST test top-1 (%)")
        for column in ("backend", "images", "PyTorch", "fp32 file", "int8 file", "drop", "agreement"):
            table.add_column(column)
        for a in accuracy:
            table.add_row(a["backend"], str(a["images"]), f"{a['torch_top1']:.2f}", f"{a['fp32_top1']:.2f}",
                          f"{a['int8_top1']:.2f}", f"{a['drop_points']:.2f}", f"{a['agreement']:.2%}")  # fmt: skip
        console.print(table)
    shipped = [s for s in ratios if s["variant"] == shipped_variant(s["backend"])]
    measured_backends = sorted({s["backend"] for s in shipped})
    summary = {
        "shipped_variant": {b: shipped_variant(b) for b in measured_backends},
        "latency_goal_met": {b: all(s["meets_goal"] for s in shipped if s["backend"] == b) for b in measured_backends},
        "median_speedup": {b: statistics.median(s["speedup"] for s in shipped if s["backend"] == b)
                           for b in measured_backends},
        "accuracy_goal_met": {a["backend"]: a["meets_goal"] for a in accuracy},
    }  # fmt: skip
    print(json.dumps({"benchmark": "int8", "command": " ".join(["python", *sys.argv]), "resolution": args.resolution,
                      "threads": 1, "timing": {"warmup": args.warmup, "runs": args.runs, "rounds": args.rounds},
                      "latency": rows, "speedups": ratios, "diagnostics": diagnostics, "accuracy": accuracy,
                      "op_profile": op_profile,
                      "summary": summary, "seconds": round(time.perf_counter() - started, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
