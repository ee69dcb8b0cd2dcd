"""Backends: real measurements with onnxruntime, OpenVINO and LiteRT; parsers against the documented
tool outputs; the adb transport against a stand-in adb (no phone exists here); TensorRT skips
without a GPU."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ofa_edge import get_space
from ofa_edge.errors import OFAEdgeError
from ofa_edge.latency.profiling import measure_group
from ofa_edge.latency.unit_models import build_unit, example_input
from ofa_edge.latency.units import space_units
from ofa_edge.profilers import backend_names, make_backend
from ofa_edge.profilers.adb import AdbDevice, AdbError, BenchmarkModelRunner, parse_devices_file, resolve_serial
from ofa_edge.profilers.base import Backend, BackendInfo, Measurement, Timing, combine_rounds, run_times
from ofa_edge.profilers.benchmark_model_output import BenchmarkOutputError, parse_op_tables, parse_timings
from ofa_edge.profilers.tensorrt import TrtexecOutputError, parse_trtexec_output

FIXTURES = Path(__file__).parent / "fixtures" / "tflite-benchmark-model"
STANDIN_ADB = Path(__file__).parent / "standin" / "adb"
SPACE = get_space("mbv3-fmnist")
# A mid-sized block of the demo space (stage 2 first block, k5 e4 at 28 px).
UNIT = next(u for u in space_units(SPACE, (28,)) if "kernel:5" in u.key and "input:14x14x24-output:7x7x32" in u.key)


def test_builtin_backends_are_found_through_entry_points():
    assert {"onnxruntime", "openvino", "tflite", "tensorrt"} <= set(backend_names())
    for name in ("onnxruntime", "openvino", "tflite", "tensorrt"):
        assert isinstance(make_backend(name), Backend)


def test_bad_backend_requests_are_one_line_errors():
    with pytest.raises(OFAEdgeError, match="unknown backend 'nope'"):
        make_backend("nope")
    with pytest.raises(OFAEdgeError, match="does not support precision 'fp16'"):
        make_backend("onnxruntime", precision="fp16")
    with pytest.raises(OFAEdgeError, match=r"^backend 'onnxruntime' has no option 'colour' \(its options: none\)$"):
        make_backend("onnxruntime", colour="blue")
    # A phone's option misspelt is one line naming the options the backend has (not a TypeError).
    with pytest.raises(OFAEdgeError, match=r"has no option 'benchmark_mode' \(its options: benchmark_model, affinity"):
        make_backend("tflite", device="pixel1", benchmark_mode="./bm")


@pytest.mark.parametrize(
    ("backend", "precision"),
    [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"), ("tflite", "fp32")],
)
def test_real_runtime_measures_a_block(backend, precision, tmp_path):
    be = make_backend(backend, threads=1, precision=precision)
    ok, why = be.availability()
    assert ok, why
    model = be.prepare(build_unit(SPACE, UNIT), example_input(UNIT), tmp_path / f"unit{be.model_suffix}")
    assert model.exists() and model.stat().st_size > 0
    m = be.measure(model, warmup=3, runs=15)
    assert m.samples >= 15
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms < 1000
    info = be.describe()
    assert (info.backend, info.precision, info.threads) == (backend, precision, 1)
    assert info.version and info.device_detail
    if backend in ("onnxruntime", "openvino", "tflite"):  # the call measure times, for raw run times
        times = run_times(be.inference(model), warmup=1, runs=4)
        assert len(times) == 4 and all(t > 0 for t in times)


def test_onnxruntime_int8_units_are_built_in_the_export_int8_form(tmp_path):
    """An int8 table prices what export ships: onnxruntime int8 units are built in export's int8
    forms (no float HardSwish or ReduceMean island, depthwise channels a multiple of 16), say so in
    their provenance, and a table whose units were built otherwise is neither resumed nor used
    without a warning."""
    import dataclasses

    import onnx

    from ofa_edge.convert.graph_form import INT8_FORMS
    from ofa_edge.latency.profiling import backend_for_table, open_table
    from ofa_edge.latency.table import LatencyTable, TableError

    def awkward(b) -> bool:  # squeeze-excite, hard-swish and a middle width that is no multiple of 16
        return b is not None and b.se_channels is not None and b.act == "hswish" and b.mid_channels % 16 != 0

    unit = next(u for u in space_units(SPACE, (28,)) if awkward(u.block))
    be = make_backend("onnxruntime", threads=1, precision="int8")
    model = onnx.load(str(be.prepare(build_unit(SPACE, unit), example_input(unit), tmp_path / "unit.onnx")))
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"HardSwish", "ReduceMean"} and "GlobalAveragePool" in ops
    groups = [a.i for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert unit.block.mid_channels not in groups and any(g > 1 and g % 16 == 0 for g in groups)
    info = be.describe()
    assert info.extra["int8_forms"] == list(INT8_FORMS["onnx"])
    assert "int8_forms" not in make_backend("onnxruntime", precision="fp32").describe().extra

    before = dataclasses.replace(info, extra={"execution_provider": "CPUExecutionProvider"})  # an older table
    LatencyTable.new(SPACE, before, [28]).save(tmp_path / "old.json")
    with pytest.raises(TableError, match="int8 graph"):
        open_table(tmp_path / "old.json", SPACE, be, [28], "", {})
    _, warnings = backend_for_table(LatencyTable.new(SPACE, before, [28]))
    assert any("prices another graph" in w for w in warnings)
    _, warnings = backend_for_table(LatencyTable.new(SPACE, info, [28]))
    assert not any("prices another graph" in w for w in warnings)


def test_openvino_int8_units_are_quantised_with_nncf_as_export_does(tmp_path):
    """OpenVINO compiles a QDQ ONNX model into another graph than the nncf-quantised IR export
    ships (many more layers, float HardSigmoid in reference kernels), so its int8 units are that IR,
    and the table says which quantiser built them."""
    import dataclasses

    import openvino

    from ofa_edge.convert.graph_form import INT8_QUANTIZERS
    from ofa_edge.latency.profiling import backend_for_table
    from ofa_edge.latency.table import LatencyTable

    be = make_backend("openvino", threads=1, precision="int8")
    assert be.model_suffix == ".xml" and make_backend("openvino", precision="fp32").model_suffix == ".onnx"
    model = be.prepare(build_unit(SPACE, UNIT), example_input(UNIT), tmp_path / f"unit{be.model_suffix}")
    ops = {op.get_type_name() for op in openvino.Core().read_model(str(model)).get_ops()}
    assert "FakeQuantize" in ops and not ops & {"QuantizeLinear", "DequantizeLinear"}
    info = be.describe()
    assert info.extra["int8_quantizer"] == INT8_QUANTIZERS["openvino"] == "nncf.quantize"
    for name, fmt in {"onnxruntime": "onnx", "tflite": "tflite", "tensorrt": "tensorrt"}.items():
        assert make_backend(name, precision="int8").describe().extra["int8_quantizer"] == INT8_QUANTIZERS[fmt]
    qdq_table = dataclasses.replace(info, extra={"inference_precision_hint": "f32"})  # made before: QDQ ONNX units
    _, warnings = backend_for_table(LatencyTable.new(SPACE, qdq_table, [28]))
    assert any("quantiser unrecorded" in w and "nncf.quantize" in w for w in warnings)


def test_combine_rounds_keeps_the_least_disturbed_pass_whole():
    rounds = [Measurement(1.2, 1.0, 1.3, 50), Measurement(3.0, 2.0, 4.0, 50), Measurement(1.0, 0.95, 1.6, 50)]
    combined = combine_rounds(rounds)
    assert (combined.median_ms, combined.p10_ms, combined.p90_ms, combined.samples) == (1.0, 0.95, 1.6, 150)
    assert combined.pass_spread == pytest.approx(2.0)  # the slowest pass took 3x the fastest
    assert Measurement.from_dict(combined.to_dict()) == combined
    assert combine_rounds(rounds[:1]).pass_spread is None
    with pytest.raises(ValueError):
        combine_rounds([])
    with pytest.raises(ValueError):
        Timing(runs=0)


class _RecordingBackend:
    """Not a latency source: records the order in which models are timed (each 'takes' its index)."""

    name, precisions, model_suffix = "recording", ("fp32",), ".txt"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare(self, module, example, path: Path) -> Path:
        path.write_text(path.stem)
        return path

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        self.calls.append(model.read_text())
        value = float(model.read_text().removeprefix("model"))
        return Measurement(value, value, value, runs)


def test_measure_group_interleaves_passes_over_the_models(tmp_path):
    backend = _RecordingBackend()
    models = [(None, None)] * 3
    measured = measure_group(backend, models, tmp_path, Timing(warmup=0, runs=4, rounds=2))
    assert backend.calls == ["model0", "model1", "model2"] * 2  # pass after pass, not model after model
    assert [m.median_ms for m in measured] == [0.0, 1.0, 2.0] and measured[0].samples == 8
    assert not list(tmp_path.iterdir())  # converted models are removed


class _BusyHostBackend(_RecordingBackend):
    """Not a latency source: every model 'takes' 1 ms, but its second timing pass falls in a
    stand-in burst of other load that slows it by ``slowdown``."""

    def __init__(self, slowdown: float) -> None:
        super().__init__()
        self.slowdown = slowdown

    def describe(self) -> BackendInfo:
        return BackendInfo("busy-host", "0", "CPU", "stand-in", 1, "fp32")

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        self.calls.append(model.name)
        value = 1.0 + self.slowdown * (self.calls.count(model.name) == 2)
        return Measurement(value, value, value, runs)


@pytest.mark.parametrize(("slowdown", "busy"), [(0.4, True), (0.05, False)])
def test_validation_reports_how_busy_the_machine_was(tmp_path, slowdown, busy):
    """Each subnet's timing passes are compared: when they differ by more than 10% (median), the
    validation says the machine was busy, with the number; when they agree, it says nothing."""
    from ofa_edge.latency.profiling import NOISY_PASS_SPREAD, noise_warning, validate
    from ofa_edge.latency.table import LatencyTable

    backend = _BusyHostBackend(slowdown)
    table = LatencyTable.new(SPACE, backend.describe(), [20])
    for unit in space_units(SPACE, (20,)):
        table.add(unit.key, Measurement(0.05, 0.05, 0.05, 1))
    result = validate(table, backend, SPACE, None, samples=3, timing=Timing(warmup=0, runs=1, rounds=3))
    noise = result["host_noise"]
    assert noise["models"] == 3 + 8 and noise["pass_spread_median"] == pytest.approx(slowdown)
    assert all(p["pass_spread"] == pytest.approx(slowdown) for p in result["points"])
    warning = noise_warning(noise, "the subnets were timed")
    assert (warning is not None) == busy == (slowdown > NOISY_PASS_SPREAD)
    if busy:
        assert "40%" in warning and "busy" in warning
    assert noise_warning(None, "anything") is None


def test_tensorrt_reports_itself_unavailable_without_a_gpu():
    be = make_backend("tensorrt")
    ok, why = be.availability()
    if ok:
        pytest.skip("a TensorRT GPU is present: covered by the device validation script")
    assert "trtexec" in why or "GPU" in why


def test_trtexec_summary_parser():
    # The performance-summary line format printed by trtexec 8.6 and later.
    text = (
        "[I] TensorRT version: 10.3.0\n[I] Selected Device: NVIDIA H100\n[I] === Performance summary ===\n"
        "[I] GPU Compute Time: min = 0.101 ms, max = 0.2 ms, mean = 0.11 ms, median = 0.105 ms, "
        "percentile(90%) = 0.12 ms, percentile(95%) = 0.13 ms, percentile(99%) = 0.15 ms\n"
    )
    s = parse_trtexec_output(text)
    assert (s.median_ms, s.mean_ms, s.min_ms, s.percentiles[90.0]) == (0.105, 0.11, 0.101, 0.12)
    assert (s.version, s.device) == ("10.3.0", "NVIDIA H100")
    with pytest.raises(TrtexecOutputError):
        parse_trtexec_output("[E] Engine deserialization failed\n")


# ------------------------------------------------------------- benchmark_model
def test_parser_reads_the_newer_inference_timings_line():
    t = parse_timings((FIXTURES / "tf2x-plain.txt").read_text())
    assert (t.inference_avg_us, t.init_us, t.first_us, t.warmup_avg_us) == (1039.66, 17851, 2104, 1041.15)
    assert (t.runs, t.inference_std_us) == (1000, 22)
    t = parse_timings((FIXTURES / "tf2x-op-profiling-header.txt").read_text())
    assert (t.inference_avg_us, t.runs, t.inference_std_us) == (33209.4, 50, 450)


def test_parser_falls_back_to_the_count_line_of_old_versions():
    t = parse_timings((FIXTURES / "tf1x-run-order.txt").read_text())
    assert (t.inference_avg_us, t.inference_std_us, t.runs, t.source) == (880688, 12426, 50, "count= line")


def test_parser_reads_the_older_average_line():
    text = (
        "count=50 first=1 curr=1 min=1 max=2 avg=1.5 std=0\n"
        "Average inference timings in us: Warmup: 40.5, Init: 900, Inference: 35.25\n"
    )
    t = parse_timings(text)
    assert (t.inference_avg_us, t.warmup_avg_us, t.init_us) == (35.25, 40.5, 900)


def test_parser_reads_op_tables():
    tables = parse_op_tables((FIXTURES / "tf1x-mobilenetv2-run-order-tail.txt").read_text())
    run_order = tables[0]
    assert run_order.title == "Run Order" and len(run_order.rows) == 8
    assert run_order.rows[0]["Name"] == "MobilenetV2/expanded_conv_16/expand/Relu6"
    assert run_order.rows[0]["avg ms"] == "2.096"
    summary = parse_op_tables((FIXTURES / "summary-by-node-type.txt").read_text())[0]
    assert summary.title == "Summary by node type"
    assert [r["Node type"] for r in summary.rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"]
    init = parse_op_tables((FIXTURES / "tf2x-op-profiling-header.txt").read_text())[0]
    assert init.context == "init" and init.rows == []


def test_parser_fails_clearly_on_other_output():
    with pytest.raises(BenchmarkOutputError, match="no inference timings"):
        parse_timings("Failed to load model /data/local/tmp/x.tflite\n")
    with pytest.raises(BenchmarkOutputError, match="no inference timings"):
        parse_timings((FIXTURES / "tf1x-mobilenetv2-run-order-tail.txt").read_text())


# -------------------------------------------------------------- adb transport
def test_devices_file_parsing():
    devices = parse_devices_file("# phones\npixel1 = FA6A10301234\nlab-s21 = 'R5CR1'  # quoted\n")
    assert devices == {"pixel1": "FA6A10301234", "lab-s21": "R5CR1"}
    with pytest.raises(AdbError, match=r"devices file:2: expected 'name = SERIAL'"):
        parse_devices_file("ok = A\nbroken line\n")


def test_unknown_device_names_the_file_and_what_to_add(tmp_path):
    path = tmp_path / "devices.conf"
    path.write_text("pixel1 = A1\n")
    assert resolve_serial("pixel1", path) == "A1"
    with pytest.raises(AdbError, match=r"'pixel4' is not in .*named there: pixel1.*add 'pixel4 = SERIAL'"):
        resolve_serial("pixel4", path)


@pytest.fixture
def standin_adb(tmp_path, monkeypatch):
    log = tmp_path / "adb.log"
    monkeypatch.setenv("STANDIN_ADB_LOG", str(log))
    monkeypatch.setenv("STANDIN_ADB_OUTPUT", str(FIXTURES / "tf2x-op-profiling-header.txt"))
    # A serial full of shell metacharacters: it must reach adb as one argument, untouched.
    serial = "R5C;touch${IFS}pwned|x`id`"
    monkeypatch.setenv("STANDIN_ADB_SERIALS", serial)
    return serial, log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_adb_transport_with_standin_adb_pushes_pins_and_parses(standin_adb, tmp_path):
    serial, log = standin_adb
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model bytes")
    runner = BenchmarkModelRunner(AdbDevice(serial, str(STANDIN_ADB)), binary, threads=1, affinity="f0")
    timings = runner.benchmark(model, warmup=5, runs=50)
    assert timings.inference_avg_us == 33209.4  # replayed fixture text, not a measurement
    calls = _calls(log)
    assert all(call[:2] == ["-s", serial] for call in calls)
    pushes = [c for c in calls if c[2] == "push"]
    assert [Path(p[3]).name for p in pushes] == ["m.tflite", "benchmark_model"]
    run = next(c for c in calls if c[2] == "shell" and "--graph=" in c[3])
    assert run[3].startswith("taskset f0 /data/local/tmp/ofa_edge/benchmark_model --graph=/data/local/tmp/ofa_edge/")
    assert "--num_threads=1 --warmup_runs=5 --num_runs=50 --use_xnnpack=true" in run[3]
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_tflite_backend_on_a_named_phone_uses_the_standin(standin_adb, tmp_path):
    serial, _ = standin_adb
    devices = tmp_path / "devices.conf"
    devices.write_text(f"pixel1 = {serial}\n")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"stand-in")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    be = make_backend("tflite", device="pixel1", benchmark_model=str(binary), devices_file=str(devices),
                      adb=str(STANDIN_ADB))  # fmt: skip
    m = be.measure(model, warmup=2, runs=50)
    assert (m.median_ms, m.statistic, m.std_ms) == (pytest.approx(33.2094), "mean", pytest.approx(0.45))
    info = be.describe()
    assert info.extra["transport"] == "adb" and serial in info.device_detail and "stand-in phone" in info.device_detail


def test_adb_failures_with_standin_adb_are_one_line(standin_adb, tmp_path):
    device = AdbDevice("unknown-serial", str(STANDIN_ADB))
    with pytest.raises(AdbError, match="adb shell on unknown-serial failed: adb: device 'unknown-serial' not found"):
        device.shell("true")
    with pytest.raises(AdbError, match="not found: install adb"):
        AdbDevice("x", str(tmp_path / "no-adb")).shell("true")
    with pytest.raises(AdbError, match="must be hex"):
        BenchmarkModelRunner(device, tmp_path / "bm", affinity="f0; reboot")
    with pytest.raises(AdbError, match="benchmark_model binary not found"):
        BenchmarkModelRunner(AdbDevice(standin_adb[0], str(STANDIN_ADB)), tmp_path / "missing").remote_binary()


@pytest.mark.skipif(shutil.which("adb") is None or not os.environ.get("OFA_EDGE_TEST_PHONE"),
                    reason="needs a real phone: set OFA_EDGE_TEST_PHONE=name in the devices file")  # fmt: skip
def test_real_phone(tmp_path):
    be = make_backend("tflite", device=os.environ["OFA_EDGE_TEST_PHONE"],
                      benchmark_model=os.environ.get("OFA_EDGE_BENCHMARK_MODEL"))  # fmt: skip
    model = be.prepare(build_unit(SPACE, UNIT), example_input(UNIT), tmp_path / "u.tflite")
    assert be.measure(model, 3, 20).median_ms > 0


def test_openvino_layer_counters(tmp_path):
    be = make_backend("openvino", threads=1)
    model = be.prepare(build_unit(SPACE, UNIT), example_input(UNIT), tmp_path / "unit.onnx")
    layers = be.layer_counters(model, runs=5)
    assert layers and all(row["real_ms"] >= 0 for row in layers)
    assert any("Convolution" in row["type"] or "Conv" in row["type"] for row in layers)
