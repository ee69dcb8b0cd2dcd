"""Export: convert and verify a small demo subnet for each format (fp32 and int8), model cards,
atomic outputs, missing extras, unsupported ops, TensorRT without a GPU, the CLI command."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ofa_edge import get_space
from ofa_edge.convert.common import ConversionError, MissingExtraError
from ofa_edge.errors import OFAEdgeError
from ofa_edge.export import (
    ExportConfig,
    ExportVerificationError,
    export_subnet,
    last_specialized,
    remove_stale_temps,
    sha256_file,
)
from ofa_edge.nn import MobileNetV3Subnet
from ofa_edge.profilers import make_backend
from ofa_edge.profilers.base import Timing

SPACE = get_space("mbv3-fmnist")
ARCH = SPACE.min_arch(20)  # the smallest demo subnet at the smallest resolution: quick to convert and run
QUICK = {"test_images": 200, "timing": Timing(warmup=2, runs=10, rounds=2), "calibration_images": 500,
         "int8_calibration_images": 100}  # fmt: skip


def _export(arch, fmt: str, **fields):
    """``export_subnet`` of ``arch`` to ``fmt`` with the other config fields given."""
    return export_subnet(arch, ExportConfig(format=fmt, **fields))


CARD_FIELDS = {"file", "files", "sha256", "bytes", "format", "precision", "arch", "resolution", "macs", "params",
               "input", "output", "normalization", "accuracy", "verification", "latency", "command",
               "created"}  # fmt: skip


def _check_export(result, fmt: str, int8: bool, out: Path) -> None:
    precisions = ["fp32", "int8"] if int8 else ["fp32"]
    assert [f.precision for f in result.files] == precisions
    ver, acc = result.verification, result.accuracy
    assert ver["passed"] and ver["fp32_max_abs_diff"] <= 1e-3 and ver["images"] == 200
    assert ver["fp32_top1_agreement"] >= 0.99
    assert acc["fp32_top1"] > 80 and abs(acc["fp32_top1"] - acc["torch_top1"]) <= 0.5
    if int8:
        assert acc["int8_agreement_with_fp32"] >= 0.9 and acc["int8_top1"] > 75
    for f in result.files:
        path = Path(f.path)
        assert path.exists() and path.parent == out
        card = json.loads(Path(f.card_json).read_text())
        assert CARD_FIELDS <= set(card)
        assert card["sha256"] == sha256_file(path) == f.sha256
        for name, digest in card["files"].items():  # OpenVINO: the .bin too
            assert sha256_file(out / name) == digest
        assert card["arch"] == ARCH.to_dict() and card["resolution"] == 20
        assert card["macs"] == SPACE.macs(ARCH) and card["params"] == SPACE.params(ARCH)
        assert card["precision"] == f.precision and card["format"] == fmt
        lat = card["latency"]
        assert lat["measured_ms"] > 0 and lat["threads"] == 1 and lat["backend"]["precision"] == f.precision
        assert lat["backend"]["backend"] == result.latency["backend"]["backend"] and lat["backend"]["device_detail"]
        md = Path(f.card_md).read_text()
        assert card["sha256"] in md and "latency" in md
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_export_converts_and_verifies_fp32_and_int8(fmt, tmp_path):
    result = _export(ARCH, fmt, int8=True, out_dir=tmp_path, **QUICK)
    _check_export(result, fmt, True, tmp_path)
    assert result.latency["precision"] == "int8" and result.latency["int8_speedup"] > 0
    if fmt == "tflite":  # static int8 files take and give int8: the card says how to convert
        card = json.loads(Path(result.file("int8").card_json).read_text())
        assert card["input"]["dtype"] == "int8" and card["input"]["quantization"]["scale"] > 0
        assert "zero_point" in card["output"]["quantization"]


@pytest.mark.slow
def test_export_with_table_and_budget_flags_a_miss(tmp_path):
    result = _export(ARCH, "onnx", out_dir=tmp_path, table="onnxruntime-cpu-fp32-mbv3-fmnist",
                           budget_ms=0.001, **QUICK)  # fmt: skip
    _check_export(result, "onnx", False, tmp_path)
    lat = result.latency
    assert lat["table"] == "onnxruntime-cpu-fp32-mbv3-fmnist" and lat["predicted_ms"] > 0
    assert lat["budget_missed"] and result.budget_missed and "misses the 0.001 ms budget" in lat["message"]
    assert lat["message"] in result.warnings
    card = json.loads(Path(result.file("fp32").card_json).read_text())
    assert card["latency"]["predicted_ms"] == lat["predicted_ms"] and card["latency"]["budget_missed"]


def test_a_table_for_another_backend_or_precision_is_refused(tmp_path):
    with pytest.raises(OFAEdgeError, match="timed with onnxruntime"):
        _export(ARCH, "onnx", out_dir=tmp_path, table="openvino-cpu-fp32-mbv3-fmnist", **QUICK)
    with pytest.raises(OFAEdgeError, match="prices int8 files and this export writes fp32: add --int8"):
        _export(ARCH, "onnx", out_dir=tmp_path, table="onnxruntime-cpu-int8-mbv3-fmnist", **QUICK)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_an_int8_export_against_an_fp32_table_compares_the_fp32_file(tmp_path):
    """The default search prices fp32 files: `export --int8` after it (the example in `export --help`)
    compares the fp32 file with the table and times the int8 file beside it."""
    result = _export(ARCH, "onnx", int8=True, out_dir=tmp_path, table="onnxruntime-cpu-fp32-mbv3-fmnist",
                           budget_ms=1000.0, **QUICK)  # fmt: skip
    lat = result.latency
    assert lat["precision"] == "fp32" and lat["predicted_ms"] > 0 and lat["int8_speedup"] > 0
    assert lat["measured_ms"] == lat["per_precision"]["fp32"]["median_ms"] and not lat["budget_missed"]
    fp32_card = json.loads(Path(result.file("fp32").card_json).read_text())
    int8_card = json.loads(Path(result.file("int8").card_json).read_text())
    assert fp32_card["latency"]["predicted_ms"] == lat["predicted_ms"]
    assert int8_card["latency"]["measured_ms"] > 0 and int8_card["latency"].get("predicted_ms") is None


def test_tensorrt_exports_on_a_gpu_or_says_why_not_in_one_line(tmp_path):
    from ofa_edge.convert.tensorrt import tensorrt_availability

    ok, why = tensorrt_availability()
    if not ok:
        with pytest.raises(OFAEdgeError) as info:
            _export(ARCH, "tensorrt", out_dir=tmp_path, **QUICK)
        assert "\n" not in str(info.value) and "GPU" in str(info.value)
        assert not list(tmp_path.iterdir())
        pytest.skip(f"no TensorRT here: {why}")
    result = _export(ARCH, "tensorrt", int8=True, out_dir=tmp_path, **QUICK)
    assert result.verification["passed"] and result.latency["backend"]["device"] != "CPU"


def test_tensorrt_backend_records_a_gpu_never_the_cpu():
    from ofa_edge.profilers.tensorrt import gpu_index, parse_exported_times

    be = make_backend("tensorrt", device="CPU")  # the CLI's default device
    info = be.describe()
    assert info.device != "CPU" and (info.device == f"GPU.{be.gpu}" or info.device == be.gpu_name())
    assert (gpu_index("GPU.1", None), gpu_index("cuda:2", None), gpu_index("CPU", None), gpu_index("GPU", 3)) == (
        1, 2, 0, 3)  # fmt: skip
    times = json.dumps([{"computeMs": v} for v in [9.0, 9.0, 1.0, 2.0, 3.0]])
    m = parse_exported_times(times, warmup=2)  # warm-up iterations are dropped
    assert (m.median_ms, m.samples) == (2.0, 3)


@pytest.mark.slow
def test_finetuning_with_distillation_runs_and_is_recorded(tmp_path):
    result = _export(ARCH, "onnx", out_dir=tmp_path, finetune_epochs=1, finetune_images=256,
                           measure_latency=False, **{k: v for k, v in QUICK.items() if k != "timing"})  # fmt: skip
    ft = result.finetune
    assert ft["epochs"] == 1 and ft["steps"] == 2 and ft["images_per_epoch"] == 256
    assert ft["teacher"] == SPACE.max_arch(20).to_dict() and np.isfinite(ft["final_loss"])
    assert result.verification["passed"] and result.latency is None
    card = json.loads(Path(result.file("fp32").card_json).read_text())
    assert card["finetune"]["steps"] == 2 and card["latency"] is None


# ------------------------------------------------------------------ atomicity
def test_a_failed_export_leaves_no_file_under_the_output_names(tmp_path, monkeypatch):
    from ofa_edge.export import pipeline

    (tmp_path / "subnet-fp32.onnx").write_bytes(b"an earlier export")

    def fail(*args, **kwargs):
        raise RuntimeError("quantiser crashed")

    monkeypatch.setattr(pipeline, "convert_int8", fail)
    with pytest.raises(RuntimeError, match="quantiser crashed"):
        _export(ARCH, "onnx", int8=True, out_dir=tmp_path, **QUICK)
    # The fp32 file had been converted and checked: it is not put in place, and the old one stays.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subnet-fp32.onnx"]
    assert (tmp_path / "subnet-fp32.onnx").read_bytes() == b"an earlier export"


@pytest.mark.slow
def test_a_killed_export_leaves_no_file_under_the_output_names(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from ofa_edge.export import pipeline
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        pipeline.convert_int8 = die
        pipeline.export_subnet({ARCH.to_dict()!r}, pipeline.ExportConfig(
            format="openvino", int8=True, out_dir={str(tmp_path)!r}, test_images=50, measure_latency=False,
            calibration_images=200))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr[-2000:]
    names = [p.name for p in tmp_path.iterdir()]
    assert names and all(n.startswith(".") for n in names)  # only hidden temp files of the dead run
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(names)
    assert not list(tmp_path.iterdir())


def test_verification_failure_writes_nothing(tmp_path, monkeypatch):
    from ofa_edge.export import pipeline
    from ofa_edge.export.formats import Outputs

    real = pipeline.run_file

    def off_by_one(*args, **kwargs):
        out = real(*args, **kwargs)
        return Outputs(out.logits + 1.0, out.io)

    monkeypatch.setattr(pipeline, "run_file", off_by_one)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch subnet by up to 1"):
        _export(ARCH, "onnx", out_dir=tmp_path, **QUICK)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------- missing extras
@pytest.mark.parametrize(("fmt", "module", "extra"), [("openvino", "openvino", "openvino"),
                                                      ("openvino", "nncf", "openvino"),
                                                      ("tflite", "litert_torch", "tflite"),
                                                      ("tflite", "ai_edge_quantizer", "tflite")])  # fmt: skip
def test_a_missing_extra_is_one_line_with_the_pip_command(fmt, module, extra, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails, find_spec finds nothing
    with pytest.raises(MissingExtraError) as info:
        _export(ARCH, fmt, int8=True, out_dir=tmp_path, **QUICK)
    message = str(info.value)
    assert f"pip install 'ofa-edge[{extra}]'" in message and "\n" not in message
    assert not list(tmp_path.iterdir())
    if module in ("openvino", "litert_torch"):
        ok, why = make_backend(fmt).availability()
        assert not ok and f"pip install 'ofa-edge[{extra}]'" in why


def test_the_converters_themselves_name_the_pip_command(monkeypatch, tmp_path):
    from ofa_edge.convert.openvino import convert_openvino
    from ofa_edge.convert.tflite import convert_tflite

    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    net, x = nn.Conv2d(1, 2, 1), torch.zeros(1, 1, 4, 4)
    with pytest.raises(MissingExtraError, match=r"pip install 'ofa-edge\[openvino\]'"):
        convert_openvino(net, x, tmp_path / "m.xml")
    with pytest.raises(MissingExtraError, match=r"pip install 'ofa-edge\[tflite\]'"):
        convert_tflite(net, x, tmp_path / "m.tflite")


# ---------------------------------------------------------------- unsupported ops
class _CumMax(nn.Module):
    """An op no converter here handles (aten::cummax)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, dim=1)[0]


def _subnet_with_unsupported_op(block: int = 2) -> MobileNetV3Subnet:
    net = MobileNetV3Subnet.from_arch(SPACE, ARCH).eval()
    net.blocks[block].conv.depth_conv.act = _CumMax()
    return net


def _convert(fmt: str, net: nn.Module, x: torch.Tensor, folder: Path) -> None:
    from ofa_edge.export.formats import FORMATS, convert_fp32

    convert_fp32(FORMATS[fmt], net, x, folder / f"m{FORMATS[fmt].suffix}")


@pytest.mark.parametrize("fmt", ["onnx", "openvino", pytest.param("tflite", marks=pytest.mark.slow)])
def test_an_unsupported_op_is_named_with_its_block(fmt, tmp_path):
    net = _subnet_with_unsupported_op(block=2)
    with pytest.raises(ConversionError) as info:
        _convert(fmt, net, torch.zeros(1, 1, 20, 20), tmp_path)
    message = str(info.value)
    assert "op 'cummax'" in message and "block 2 (blocks.2.conv.depth_conv.act)" in message, message
    assert "\n" not in message
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ int8 I/O
def test_int8_io_round_trip():
    from ofa_edge.convert.tflite import dequantize_output, io_quantization, quantize_input

    detail = {"dtype": np.int8, "quantization": (0.05, -10)}
    x = np.array([[-1.0, 0.0, 0.5, 100.0]], np.float32)
    q = quantize_input(x, detail)
    assert q.dtype == np.int8 and q.tolist() == [[-30, -10, 0, 127]]  # clipped at the top
    assert np.allclose(dequantize_output(q, detail)[0, :3], x[0, :3])
    assert io_quantization({"dtype": np.float32, "quantization": (0.0, 0)}) is None


# ------------------------------------------------------------ specialize record
def test_without_an_arch_the_last_specialize_is_used_or_one_line_says_what_to_do(tmp_path):
    with pytest.raises(OFAEdgeError, match=r"run `ofa-edge specialize` first, or pass --arch"):
        last_specialized(tmp_path / "specialized" / "last.json")
    folder = tmp_path / "specialized"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(ARCH.to_dict()))
    record = {
        "format": "ofa-edge-specialize/1",
        "targets": [
            {"table": "onnxruntime-cpu-fp32-mbv3-fmnist", "budget_ms": 0.5, "arch_file": str(folder / "a.json")}
        ],
    }
    (folder / "last.json").write_text(json.dumps(record))
    target = last_specialized(folder / "last.json")
    assert target.arch == ARCH and target.table == "onnxruntime-cpu-fp32-mbv3-fmnist" and target.budget_ms == 0.5


def test_the_specialize_target_timed_by_the_format_is_chosen_and_other_tables_are_dropped(tmp_path, monkeypatch):
    """A record with an onnxruntime and a phone (tflite) target: `export --format tflite` takes the
    phone's arch and table; `--format openvino` takes the first target's arch without its table
    (onnxruntime cannot price an OpenVINO file), keeping its budget only because that table was
    measured on this CPU."""
    monkeypatch.chdir(tmp_path)
    phone = _phone_table(tmp_path)
    folder = tmp_path / "specialized"
    folder.mkdir()
    other = SPACE.max_arch(28)
    (folder / "cpu.json").write_text(json.dumps(ARCH.to_dict()))
    (folder / "phone.json").write_text(json.dumps(other.to_dict()))
    record = {"targets": [
        {"table": "onnxruntime-cpu-fp32-mbv3-fmnist", "budget_ms": 0.5, "arch_file": str(folder / "cpu.json")},
        {"table": phone.stem, "budget_ms": 30.0, "arch_file": str(folder / "phone.json")},
    ]}  # fmt: skip
    (folder / "last.json").write_text(json.dumps(record))
    tflite = last_specialized(backend="tflite")
    assert tflite.arch == other and tflite.timing_for("tflite") == (phone.stem, 30.0, None)
    first = last_specialized(backend="openvino")
    assert first.arch == ARCH
    table, budget, note = first.timing_for("openvino")
    assert table is None and budget == 0.5 and "searched with table onnxruntime-cpu-fp32-mbv3-fmnist" in note
    # A phone target's budget is not this CPU's: an onnx file of its arch is timed here against none.
    phone_target = last_specialized(backend="tflite")
    table, budget, note = phone_target.timing_for("onnxruntime")
    assert table is None and budget is None and "not against the 30 ms budget" in note


# ------------------------------------------------- timing on the table's device
STANDIN_ADB = Path(__file__).parent / "standin" / "adb"
BENCHMARK_MODEL_OUTPUT = Path(__file__).parent / "fixtures" / "tflite-benchmark-model" / "tf2x-op-profiling-header.txt"


def _phone_table(folder: Path, name: str = "tflite-pixel1-fp32-mbv3-fmnist") -> Path:
    """A table shaped as `profile --backend tflite --device pixel1` writes it. Its entries are the
    shipped local TFLite table's (no phone here): only its backend record says 'phone'."""
    from ofa_edge.latency.store import resolve_table_path

    record = json.loads(resolve_table_path("tflite-cpu-fp32-mbv3-fmnist").read_text())
    record["backend"].update(device="pixel1", device_detail="adb serial SERIAL1, model stand-in phone")
    record["backend"]["extra"].update(transport="adb", affinity="f0", binary="benchmark_model")
    path = folder / "latency_tables" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def standin_phone(tmp_path, monkeypatch):
    """The stand-in adb (tests/standin/adb: it replays a documented benchmark_model output, never a
    measurement) answering for serial SERIAL1, named pixel1 in a devices file."""
    log = tmp_path / "adb.log"
    monkeypatch.setenv("STANDIN_ADB_LOG", str(log))
    monkeypatch.setenv("STANDIN_ADB_OUTPUT", str(BENCHMARK_MODEL_OUTPUT))
    monkeypatch.setenv("STANDIN_ADB_SERIALS", "SERIAL1")
    (tmp_path / "devices.conf").write_text("pixel1 = SERIAL1\n")
    (tmp_path / "benchmark_model").write_bytes(b"stand-in binary")
    options = ["-O", f"benchmark_model={tmp_path / 'benchmark_model'}",
               "-O", f"devices_file={tmp_path / 'devices.conf'}", "-O", f"adb={STANDIN_ADB}"]  # fmt: skip
    return log, options


@pytest.mark.slow
def test_cli_export_after_specialize_for_a_phone_times_on_the_phone_with_standin_adb(
    tmp_path, capsys, monkeypatch, standin_phone
):
    """After `specialize --table <a phone's table>`, `export --format tflite -O ...` times the files
    on that phone (here the stand-in adb), not on this CPU. Without the devices file it is one line."""
    log, options = standin_phone
    monkeypatch.chdir(tmp_path)
    phone = _phone_table(tmp_path)
    (tmp_path / "specialized").mkdir()
    (tmp_path / "specialized" / "a.json").write_text(json.dumps(ARCH.to_dict()))
    (tmp_path / "specialized" / "last.json").write_text(json.dumps(
        {"targets": [{"table": phone.stem, "budget_ms": 40.0, "arch_file": "specialized/a.json"}]}))  # fmt: skip
    quick = ["--test-images", "200", "--runs", "5", "--rounds", "1", "--calibration-images", "500"]
    code, _, err = _cli(["export", "--format", "tflite", *quick], capsys)
    assert code == 2 and err.count("\n") == 2 and "device 'pixel1' is not" in err  # line 1 names the arch
    code, out, err = _cli(["export", "--format", "tflite", *quick, *options, "--json"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    lat = payload["latency"]
    assert lat["backend"]["device"] == "pixel1" and "stand-in phone" in lat["backend"]["device_detail"]
    assert lat["backend"]["extra"]["transport"] == "adb" and lat["table"] == phone.stem
    assert lat["measured_ms"] == pytest.approx(33.2094)  # the stand-in's replayed text, not a measurement
    assert lat["budget_ms"] == 40.0 and lat["predicted_ms"] > 0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(c[2] == "shell" and "benchmark_model --graph=" in c[3] and "--num_runs=5" in c[3] for c in calls)
    card = json.loads(Path(payload["files"][0]["card_json"]).read_text())
    assert card["latency"]["backend"]["device"] == "pixel1" and "--option benchmark_model=" in card["command"]
    assert payload["verification"]["passed"]  # parity is checked here, with this machine's runtime


def test_deploy_to_a_phone_target_exports_the_format_it_times():
    """A phone's table times TFLite files only: by default its target exports just those; asked for
    more, the others are exported and verified but not timed (timed on this CPU, they would read as
    the phone's). A target on this CPU keeps every format. An --int8 deploy against an fp32 table
    compares the fp32 file with it."""
    from ofa_edge.export.deploy import _matches, _target_formats
    from ofa_edge.latency.table import load_table

    local = load_table("tflite-cpu-fp32-mbv3-fmnist")
    phone = load_table("tflite-cpu-fp32-mbv3-fmnist")
    phone.backend["device"] = "pixel1"
    every = ["onnx", "openvino", "tflite"]
    assert _target_formats(local, every, True, explicit=False) == (every, [])
    assert _target_formats(phone, every, True, explicit=False) == (
        ["tflite"], ["target pixel1 (tflite): exporting tflite, the format its backend times"])  # fmt: skip
    assert _target_formats(phone, ["onnx"], False, explicit=False)[0] == ["tflite"]
    formats, notes = _target_formats(phone, ["onnx", "tflite"], True, explicit=True)
    assert formats == ["onnx", "tflite"] and notes == [
        "onnx files cannot be timed on pixel1 (tflite): exported and verified, not timed"]  # fmt: skip
    assert _matches("tflite", local, int8=True) and _matches("tflite", local, int8=False)
    assert not _matches("onnx", local, int8=True)
    assert not _matches("onnx", load_table("onnxruntime-cpu-int8-mbv3-fmnist"), int8=False)


@pytest.mark.slow
def test_deploy_to_a_phone_times_there_with_standin_adb_and_passes_options_only_there(
    tmp_path, monkeypatch, standin_phone
):
    """Two targets, a phone (the stand-in adb) and this CPU: the phone's tflite file is timed over
    adb with the -O options; the CPU target's onnx file is timed here, its backend never given the
    phone's options (onnxruntime would refuse them)."""
    import ofa_edge.export.deploy as deploy_module
    from ofa_edge.cli.common import backend_options
    from ofa_edge.export.deploy import deploy

    log, options = standin_phone
    monkeypatch.chdir(tmp_path)
    phone = _phone_table(tmp_path)
    opened = []  # the real SupernetScorer.open, counted: 4 exports read the supernet and data once
    real_open = deploy_module.SupernetScorer.open
    monkeypatch.setattr(deploy_module.SupernetScorer, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    on_phone, here = deploy([40.0, 1.0], [phone.stem, "onnxruntime-cpu-fp32-mbv3-fmnist"], ["tflite", "onnx"],
                            int8=False, out_dir=tmp_path / "d", test_images=200,
                            backend_options=backend_options(options[1::2]))  # fmt: skip
    tflite, untimed = on_phone.exports
    assert tflite.format == "tflite" and tflite.latency["backend"]["device"] == "pixel1"
    assert tflite.latency["measured_ms"] == pytest.approx(33.2094)  # replayed stand-in text
    assert untimed.format == "onnx" and untimed.latency is None and untimed.verification["passed"]
    assert "onnx files cannot be timed on pixel1 (tflite): exported and verified, not timed" in on_phone.notes
    onnx = next(e for e in here.exports if e.format == "onnx")
    assert onnx.latency["backend"]["device"] == "CPU" and onnx.latency["table"] == "onnxruntime-cpu-fp32-mbv3-fmnist"
    assert onnx.latency["measured_ms"] < 33 and onnx.latency["predicted_ms"] > 0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    graphs = {word for c in calls if c[2] == "shell" for word in c[3].split() if word.startswith("--graph=")}
    assert len(graphs) == 1  # one file timed on the phone (in every timing pass): the phone target's tflite
    assert len(opened) == 1


# ------------------------------------------- TensorRT through the stand-in trtexec
STANDIN = Path(__file__).parent / "standin"
STANDIN_COMPUTE_MS = 0.105  # what tests/standin/trtexec replays for every iteration: never a measurement


@pytest.fixture
def standin_gpu(tmp_path, monkeypatch):
    """No NVIDIA GPU here: the stand-in nvidia-smi (names one GPU) on PATH, and the stand-in
    trtexec (tests/standin/trtexec: its "engine" holds the ONNX model, which it runs with
    onnxruntime for the parity check, and every timing is a replayed 0.105 ms) given as
    -O trtexec=PATH, as for a TensorRT install off PATH; trtexec itself is not on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").symlink_to(STANDIN / "nvidia-smi")
    # The stand-in trtexec runs under this interpreter's python3 (it imports onnx and onnxruntime).
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]))
    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("STANDIN_TRTEXEC_LOG", str(log))
    return log, {"trtexec": str(STANDIN / "trtexec")}


def _trtexec_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_tensorrt_export_builds_checks_and_times_with_the_trtexec_and_gpu_given_with_standin_trtexec(
    tmp_path, standin_gpu
):
    """`export --format tensorrt -O trtexec=PATH -O gpu=1`: conversion, parity check and timing all
    use that trtexec and GPU. Through the stand-in, the whole path runs: engines built, parity
    checked on real outputs, the int8 engine built from the QDQ model, and the fp16 engine. The
    stand-in runs every engine in fp32: nothing here says how fp16 numerics fare on a GPU."""
    log, options = standin_gpu
    result = _export(ARCH, "tensorrt", int8=True, fp16=True, out_dir=tmp_path / "out",
                           backend_options={**options, "gpu": "1"}, **QUICK)  # fmt: skip
    assert result.verification["passed"] and result.verification["fp32_max_abs_diff"] < 1e-3
    lat = result.latency
    assert lat["backend"]["device"] == "Stand-in GPU (no NVIDIA GPU here)" and lat["backend"]["version"] == "10.3.0"
    assert lat["measured_ms"] == STANDIN_COMPUTE_MS  # the stand-in's replayed number, not a measurement
    calls = _trtexec_calls(log)
    builds = [c for c in calls if any(a.startswith("--saveEngine=") for a in c)]
    runs = [c for c in calls if any(a.startswith("--loadInputs=") for a in c)]
    timings = [c for c in calls if any(a.startswith("--exportTimes=") for a in c)]
    # fp32, fp16 (--fp16) and int8 (--int8 --fp16, from the QDQ model) engines
    assert len(builds) == 3 and sum("--int8" in c for c in builds) == 1 and sum("--fp16" in c for c in builds) == 2
    assert runs and timings and all(c[0] == "--device=1" for c in builds + runs + timings)  # -O gpu=1 everywhere
    card = json.loads(Path(result.file("int8").card_json).read_text())
    assert card["latency"]["backend"]["extra"]["gpu"] == 1
    fp16_card = json.loads(Path(result.file("fp16").card_json).read_text())
    assert fp16_card["quantizer"] == "trtexec --fp16"  # the stand-in runs fp16 engines in fp32: no numerics here
    assert [f.precision for f in result.files] == ["fp32", "fp16", "int8"] and "fp16_speedup" in lat
    with pytest.raises(OFAEdgeError, match="^fp16 files are TensorRT engines"):
        _export(ARCH, "onnx", fp16=True, out_dir=tmp_path / "onnx", **QUICK)
    with pytest.raises(OFAEdgeError, match="^TensorRT needs trtexec: /no/trtexec is not an executable file$"):
        _export(ARCH, "tensorrt", out_dir=tmp_path / "none", backend_options={"trtexec": "/no/trtexec"}, **QUICK)


def _gpu_table(folder: Path, precision: str = "fp32") -> Path:
    """A table shaped as `profile --backend tensorrt` writes it on the stand-in GPU; its entries are
    the shipped onnxruntime table's (no GPU here): only its backend record says 'GPU'."""
    from ofa_edge.latency.store import resolve_table_path

    record = json.loads(resolve_table_path("onnxruntime-cpu-fp32-mbv3-fmnist").read_text())
    record["backend"] = {"backend": "tensorrt", "version": "10.3.0", "device": "Stand-in GPU (no NVIDIA GPU here)",
                         "device_detail": "Stand-in GPU (no NVIDIA GPU here) (index 0)", "threads": None,
                         "precision": precision, "input_layout": "NCHW",
                         "extra": {"tool": "trtexec", "gpu": 0, "spin_wait": True, "cuda_graph": True,
                                   "statistic": "GPU compute time"}}  # fmt: skip
    path = folder / "latency_tables" / f"tensorrt-stand-in-gpu-{precision}-mbv3-fmnist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_an_fp16_gpu_table_asks_for_the_fp16_engine_standin_trtexec(tmp_path, standin_gpu):
    _, options = standin_gpu
    with pytest.raises(OFAEdgeError, match="prices fp16 files and this export writes fp32 and int8: add --fp16$"):
        _export(ARCH, "tensorrt", int8=True, table=_gpu_table(tmp_path, "fp16"), out_dir=tmp_path / "out",
                      backend_options=options, **QUICK)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_tensorrt_tables_are_named_for_the_gpu_and_its_version_is_read_from_the_banner_standin_trtexec(standin_gpu):
    """A TensorRT table is named for its GPU, not for the CLI's default device (CPU), and `backends`
    reads the version from trtexec's banner ("100300" is 10.3.0)."""
    from ofa_edge.latency.profiling import _table_device
    from ofa_edge.profilers.tensorrt import trtexec_version

    _, options = standin_gpu
    gpu = make_backend("tensorrt", "CPU", **options)
    assert _table_device("CPU", gpu) == "stand-in-gpu-no-nvidia-gpu-here"
    assert _table_device("CPU", make_backend("onnxruntime")) == "CPU"
    assert gpu.availability() == (True, "10.3.0")
    assert [trtexec_version(f"[TensorRT v{n}]") for n in (100300, 101100, 8601, 8205)] == [
        "10.3.0", "10.11.0", "8.6.1", "8.2.5"]  # fmt: skip
    with pytest.raises(OFAEdgeError, match="gpu must be a GPU index"):
        make_backend("tensorrt", "CPU", gpu="first")
    # A table profiled on GPU 1 and timed on GPU 0 says which option restores it (the record's key
    # was gpu_index, and the hint "-O gpu_index=1" named no option).
    from ofa_edge.latency.profiling import timing_setting_warnings

    on_gpu1 = make_backend("tensorrt", "GPU.1", **options).describe()
    assert on_gpu1.extra["gpu"] == 1
    assert timing_setting_warnings(on_gpu1.to_dict(), gpu.describe()) == [
        "the table was measured with gpu=1, this timing uses 0 (pass -O gpu=1 to time as the table did)"]  # fmt: skip


@pytest.mark.slow
def test_deploy_to_a_gpu_table_builds_and_times_there_with_standin_trtexec(tmp_path, monkeypatch, standin_gpu):
    """A GPU target's table (shaped as `profile --backend tensorrt` writes it) gets the format its
    backend times, built, checked and timed through -O trtexec=PATH."""
    from ofa_edge.export.deploy import deploy

    log, options = standin_gpu
    monkeypatch.chdir(tmp_path)
    table = _gpu_table(tmp_path)
    (on_gpu,) = deploy([1.0], [table.stem], int8=False, out_dir=tmp_path / "d", test_images=100,
                       backend_options=options)  # fmt: skip
    (export,) = on_gpu.exports
    assert export.format == "tensorrt" and export.verification["passed"]
    assert export.latency["measured_ms"] == STANDIN_COMPUTE_MS and export.latency["table"] == table.stem
    assert "target Stand-in GPU (no NVIDIA GPU here) (tensorrt): exporting tensorrt, the format its backend " \
           "times" in on_gpu.notes  # fmt: skip
    assert any(a.startswith("--saveEngine=") for c in _trtexec_calls(log) for a in c)


def test_timing_on_a_device_this_machine_lacks_is_one_line_before_any_work(tmp_path):
    """`export --format openvino --device NPU` on a machine without one ended in OpenVINO's
    traceback after the conversion; it is now one line before the supernet is loaded."""
    ov = pytest.importorskip("openvino")
    if "NPU" in ov.Core().available_devices:
        pytest.skip("this machine has an NPU")
    with pytest.raises(OFAEdgeError, match="^backend 'openvino' is not available here: .* sees no NPU"):
        _export(ARCH, "openvino", device="NPU", out_dir=tmp_path, **QUICK)
    assert not list(tmp_path.iterdir())


def test_timing_settings_that_differ_from_the_table_are_warned():
    from ofa_edge.latency.profiling import timing_setting_warnings
    from ofa_edge.profilers.base import BackendInfo

    table = {"precision": "fp32", "extra": {"transport": "adb", "affinity": "f0", "binary": "/a/benchmark_model"}}
    same = BackendInfo("tflite", "v", "pixel1", "d", 1, "fp32", extra={"transport": "adb", "affinity": "f0",
                                                                        "binary": "./benchmark_model"})  # fmt: skip
    assert timing_setting_warnings(table, same) == []
    other = BackendInfo("tflite", "v", "pixel1", "d", 1, "fp32", extra={"transport": "adb", "affinity": "0f"})
    assert timing_setting_warnings(table, other) == [
        "the table was measured with affinity='f0', this timing uses '0f' (pass -O affinity=f0 to time as the "
        "table did)"
    ]


# ---------------------------------------------------------------- table refit
def test_a_calibration_point_goes_to_a_copy_never_the_shipped_table(tmp_path, monkeypatch):
    from ofa_edge.export import add_calibration_point
    from ofa_edge.latency.store import resolve_table_path

    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "latency_tables"))
    name = "onnxruntime-cpu-fp32-mbv3-fmnist"
    shipped = resolve_table_path(name)
    before = shipped.read_bytes()
    saved, table, warnings = add_calibration_point(name, SPACE, ARCH, 0.2)
    assert saved == tmp_path / "latency_tables" / f"{name}.json" and saved.exists()
    assert shipped.read_bytes() == before
    assert table.calibration.points[-1]["measured_ms"] == 0.2 and table.calibration.points[-1]["source"] == "export"
    assert any("ships with ofa-edge" in w for w in warnings)
    again, table2, _ = add_calibration_point(name, SPACE, ARCH, 0.21)  # now found first, updated in place
    assert again == saved and len(table2.calibration.points) == len(table.calibration.points) + 1


# ------------------------------------------------------------------------ CLI
def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from ofa_edge.cli.export import register_export_command

    app_module = importlib.import_module("ofa_edge.cli.app")
    if not any(c.name == "export" for c in app_module.app.registered_commands):
        register_export_command(app_module.app)  # until app.py registers it
    code = app_module.main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_export_json_prints_one_object(tmp_path, capsys):
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH.to_dict()))
    code, out, err = _cli(["export", "--format", "onnx", "--arch", str(arch_file), "--int8", "--out",
                           str(tmp_path / "out"), "--test-images", "200", "--runs", "5", "--rounds", "1",
                           "--budget", "1000ms", "--calibration-images", "500", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert payload["format"] == "onnx" and [f["precision"] for f in payload["files"]] == ["fp32", "int8"]
    assert payload["latency"]["budget_ms"] == 1000 and not payload["latency"]["budget_missed"]
    card = json.loads(Path(payload["files"][1]["card_json"]).read_text())
    assert card["command"].startswith("ofa-edge export --format onnx")


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(["export", "--format", "onnx"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "run `ofa-edge specialize` first, or pass --arch" in err
    code, _, err = _cli(["export", "--format", "coreml", "--arch", "x.json"], capsys)
    assert code == 2 and err.count("\n") == 1
    code, _, err = _cli(["export", "--format", "coreml"], capsys)  # no specialize record either
    assert code == 2 and err.count("\n") == 1 and "unknown export format 'coreml'" in err
    monkeypatch.setitem(sys.modules, "openvino", None)
    (tmp_path / "a.json").write_text(json.dumps(ARCH.to_dict()))
    code, _, err = _cli(["export", "--format", "openvino", "--arch", "a.json"], capsys)
    assert code == 2 and err == "error: openvino is not installed (openvino export needs it): " \
                                "pip install 'ofa-edge[openvino]'\n"  # fmt: skip


def test_stale_temps_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".subnet-fp32.partial-{os.getpid()}-0123abcd.onnx"
    mine.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [] and mine.exists()
