"""A user's first minute: outputs that cannot be written are one line before any work, inputs are
checked before the first progress line, listings go to stdout, a partial table never takes a
complete table's name, and one process at a time writes a table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.fileio import Busy, exclusive

ARCH = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 20}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "latency_tables"))
    (tmp_path / "a.json").write_text(json.dumps(ARCH))
    (tmp_path / "a-file").write_text("keep me")
    return tmp_path


# ------------------------------------------------------------- outputs checked first
@pytest.mark.parametrize("command", [
    ["export", "--format", "onnx", "--arch", "a.json", "--out", "a-file/exp"],
    ["deploy", "--format", "onnx", "--out", "a-file/d"],
    ["specialize", "--budget", "1ms", "--out", "a-file/s"],
    ["profile", "--resolutions", "20", "--out", "a-file/t.json"],
    ["predictor", "data", "--out", "a-file/acc.jsonl"],
    ["predictor", "train", "--data", "a.json", "--out", "a-file/p.safetensors"],
    ["train", "--schedule", "quick", "--out", "a-file/run"],
])  # fmt: skip
def test_an_output_under_a_file_is_one_line_before_any_work(command, in_tmp, capsys):
    started = time.perf_counter()
    code, out, err = run(capsys, *command)
    assert "is a file, not a folder" in _one_error(code, err) and out == ""
    assert time.perf_counter() - started < 20  # nothing was searched, loaded or measured
    assert (in_tmp / "a-file").read_text() == "keep me" and sorted(p.name for p in in_tmp.iterdir()) == [
        "a-file", "a.json"]  # fmt: skip


def test_an_unwritable_output_folder_is_one_line(in_tmp, capsys, monkeypatch):
    """A read-only file system (os.access says no, as it does there even for root)."""
    import ofa_edge.fileio as fileio

    (in_tmp / "ro").mkdir()
    real = fileio.os.access
    monkeypatch.setattr(fileio.os, "access",
                        lambda p, mode: False if Path(p).name == "ro" and mode & fileio.os.W_OK else real(p, mode))
    code, _, err = run(capsys, "export", "--format", "onnx", "--arch", "a.json", "--out", "ro/exp")
    assert "cannot create ro/exp: ro is not writable" in _one_error(code, err)
    code, _, err = run(capsys, "export", "--format", "onnx", "--arch", "a.json", "--out", "ro")
    assert "the folder is not writable" in _one_error(code, err)
    assert not list((in_tmp / "ro").iterdir())


def test_an_empty_supernet_is_refused_before_the_first_progress_line(in_tmp, capsys):
    (in_tmp / "empty.safetensors").write_bytes(b"")
    code, _, err = run(capsys, "export", "--format", "onnx", "--arch", "a.json", "--supernet", "empty.safetensors")
    assert "empty.safetensors is empty" in _one_error(code, err)


def test_a_folder_where_a_file_goes_is_one_line(in_tmp, capsys):
    (in_tmp / "acc.jsonl").mkdir()
    code, _, err = run(capsys, "predictor", "data", "--out", "acc.jsonl")
    assert "it is a folder, not a file" in _one_error(code, err)


# ------------------------------------------------------------------------ listings
def test_tables_list_prints_its_listing_on_stdout(capsys):
    code, out, err = run(capsys, "tables", "list")
    assert code == 0 and "onnxruntime-cpu-fp32-mbv3-fmnist" in out and "onnxruntime-cpu-fp32" not in err


def test_specialize_prints_its_result_on_stdout(in_tmp, capsys):
    code, out, err = run(capsys, "specialize", "--budget", "0.5ms")
    assert code == 0 and "stage" in out and "recorded in" in err


# ----------------------------------------------------------- partial tables, plots
@pytest.mark.slow
def test_a_profile_of_some_resolutions_is_named_for_them(in_tmp, capsys):
    code, out, _ = run(capsys, "profile", "--resolutions", "20", "--runs", "2", "--warmup", "0", "--rounds", "1",
                       "--calibration-samples", "0", "--json")  # fmt: skip
    written = Path(json.loads(out)["table"])
    assert code == 0 and written.name == "onnxruntime-cpu-fp32-mbv3-fmnist-r20.json"
    code, out, _ = run(capsys, "latency", "predict", "-t", "onnxruntime-cpu-fp32-mbv3-fmnist", "--arch", "a.json",
                       "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["predicted_ms"] > 0  # the shipped complete table still answers


def test_a_loose_budget_does_not_squeeze_the_plot():
    pytest.importorskip("matplotlib")
    from ofa_edge.search.predictor import load_predictor
    from ofa_edge.search.specialize import Target, front_figure, specialize

    [result] = specialize(load_predictor(), [Target("onnxruntime-cpu-fp32-mbv3-fmnist", 25.0)], generations=20)
    ax = front_figure(result).axes[0]
    low, high = ax.get_xlim()
    assert high < 5 and low > 0 and high - low > 0.2  # the front's span, not 0-25 ms
    assert any("budget 25 ms" in text.get_text() for text in ax.texts)


# -------------------------------------------------------------------- one writer
def _hold(lock_target: Path, seconds: float) -> subprocess.Popen:
    code = ("import sys, time\nfrom pathlib import Path\nfrom ofa_edge.fileio import exclusive\n"
            f"with exclusive(Path({str(lock_target)!r}), 'table'):\n    print('held', flush=True)\n"
            f"    time.sleep({seconds})\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_of_a_table_stops_with_one_line_naming_the_holder(in_tmp, capsys):
    table = in_tmp / "latency_tables" / "t.json"
    holder = _hold(table, 60)
    try:
        with pytest.raises(Busy, match=rf"table {table} is being written by another process \(pid {holder.pid}: "):
            with exclusive(table, "table"):
                pass
        code, _, err = run(capsys, "profile", "--resolutions", "20", "--calibration-samples", "0", "--out", str(table))
        assert f"pid {holder.pid}" in _one_error(code, err)
        assert not table.exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_writer_is_taken_over(in_tmp):
    table = in_tmp / "t.json"
    holder = _hold(table, 60)
    holder.kill()
    holder.wait()
    assert (in_tmp / "t.json.lock").exists()  # left behind by the killed process
    with exclusive(table, "table"):
        assert f"pid {__import__('os').getpid()}" in (in_tmp / "t.json.lock").read_text()
    assert not (in_tmp / "t.json.lock").exists()


def test_a_second_training_into_one_run_folder_stops_with_one_line(in_tmp, capsys):
    run_folder = in_tmp / "runs" / "quick"
    holder = _hold(run_folder, 60)
    try:
        code, _, err = run(capsys, "train", "--schedule", "quick", "--out", str(run_folder))
        assert f"run folder {run_folder} is being written by another process (pid {holder.pid}" in _one_error(code, err)
        assert not run_folder.exists()
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------- a table of this CPU
def _as_if_measured_elsewhere(in_tmp: Path) -> Path:
    """The shipped demo table, copied to the user's folder as if profiled on another CPU."""
    from ofa_edge.latency.store import resolve_table_path

    record = json.loads(resolve_table_path("onnxruntime-cpu-fp32-mbv3-fmnist").read_text())
    record["backend"]["device_detail"] = "Another CPU (AVX2, 2 cores)"
    record["calibration"]["host"] = "Another CPU (AVX2, 2 cores)"
    path = in_tmp / "latency_tables" / "onnxruntime-cpu-fp32-mbv3-fmnist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_a_table_of_another_cpu_is_calibrated_here_once_then_reused(in_tmp):
    from ofa_edge.host import cpu_identity
    from ofa_edge.latency.profiling import table_for_this_cpu
    from ofa_edge.latency.table import load_table
    from ofa_edge.profilers.base import Timing

    path = _as_if_measured_elsewhere(in_tmp)
    assert "measured on 'Another CPU" in load_table(path).machine_warning()
    said = []
    name, note = table_for_this_cpu("mbv3-fmnist", calibration_samples=2, timing=Timing(0, 3, 1), warn=said.append)
    table = load_table(name)
    assert name == "onnxruntime-cpu-fp32-mbv3-fmnist" and "calibrated on this CPU" in note
    assert table.calibration.host == cpu_identity() and table.machine_warning() is None
    assert table.validation is None  # the other CPU's validation checked another calibration
    assert any("calibrating it on this CPU first" in s for s in said)
    assert table_for_this_cpu("mbv3-fmnist", calibration_samples=2, timing=Timing(0, 3, 1)) == (name, None)
