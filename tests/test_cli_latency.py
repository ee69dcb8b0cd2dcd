"""`ofa-edge backends | profile | tables | latency` end to end, with real onnxruntime measurements."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.latency.table import TableError, load_table

RES = "20"  # the smallest demo resolution keeps these runs to seconds


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _profile(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "profile", "--resolutions", RES, "--out", str(out), "--runs", "5", "--warmup", "1",
               "--rounds", "2", "--calibration-samples", "6", "--json", *extra)  # fmt: skip


def test_backends_lists_the_builtins(capsys):
    code, out, _ = run(capsys, "backends", "--json")
    rows = {r["backend"]: r for r in json.loads(out)["backends"]}
    assert code == 0
    assert rows["onnxruntime"]["available"] and rows["openvino"]["available"] and rows["tflite"]["available"]
    assert "int8" in rows["onnxruntime"]["precisions"]
    assert set(rows) >= {"onnxruntime", "openvino", "tflite", "tensorrt"}


def test_profile_predict_validate(capsys, tmp_path):
    table_path = tmp_path / "ort.json"
    code, out, err = _profile(capsys, table_path)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["entries"] == 96 and summary["resolutions"] == [20]
    assert summary["calibration"]["points"] == 6 + 8  # the random subnets and the 8 corners at 20 px
    assert summary["host_noise"]["models"] == 96 and summary["host_noise"]["pass_spread_median"] >= 0
    table = load_table(table_path)
    assert table.complete and table.backend["backend"] == "onnxruntime" and table.backend["threads"] == 1
    assert "ofa-edge" in table.command and table.measure == {"warmup": 1, "runs": 5, "rounds": 2}

    arch = tmp_path / "a.json"
    assert run(capsys, "arch", "sample", "--seed", "1", "-r", RES, "--out", str(arch))[0] == 0
    code, out, _ = run(capsys, "latency", "predict", "--table", str(table_path), "--arch", str(arch), "--json",
                       "--breakdown")  # fmt: skip
    predicted = json.loads(out)
    assert code == 0 and predicted["calibrated"] and predicted["predicted_ms"] > 0
    assert sum(u["ms"] for u in predicted["entries"]) == pytest.approx(predicted["sum_ms"])

    code, out, err = run(capsys, "latency", "validate", "--table", str(table_path), "--samples", "4", "--runs", "5",
                         "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0, err
    assert result["samples"] == 4 and {"uncalibrated", "calibrated"} <= set(result)
    assert result["host_noise"]["models"] == 4 + 8  # each subnet's timing passes compared
    assert 0 <= result["calibrated"]["within_10pct"] <= 1
    assert load_table(table_path).validation["samples"] == 4
    # The corners are measured and reported apart from the random subnets.
    assert {c["name"] for c in result["corners"]["subnets"]} == {
        f"d{d}-e{e}-k{k}@20" for d in (2, 4) for e in (3, 6) for k in (3, 7)
    }
    assert 0 <= result["corners"]["calibrated"]["within_10pct"] <= 1


def test_profile_classes_adds_only_the_classifier_and_prices_that_many_classes_exactly(capsys, tmp_path):
    from ofa_edge import get_space
    from ofa_edge.space.space import corner_archs

    table_path = tmp_path / "ort.json"
    assert _profile(capsys, table_path, "--calibration-samples", "0")[0] == 0
    before = load_table(table_path)
    ten = get_space("mbv3-fmnist")
    hundred = ten.with_classes(100)
    with pytest.raises(TableError, match="profile --classes 100"):  # 100 classes: past the tolerance
        before.check_space(hundred)
    # again with --classes on the table it has: one new entry, nothing else measured again
    code, out, err = _profile(capsys, table_path, "--calibration-samples", "0", "--classes", "100")
    assert code == 0, err
    assert json.loads(out)["entries"] == 97
    after = load_table(table_path)
    assert {k: v for k, v in after.entries.items() if k in before.entries} == before.entries
    (new_key,) = set(after.entries) - set(before.entries)
    assert new_key.startswith("Logits-") and new_key.endswith("-output:100")
    assert after.space().num_classes == 10 and after.pricing_space(hundred) is hundred
    assert after.classifier_note(hundred) is None
    # the added classifier does not change how far the table's own prices another class count
    assert after.classifier_gap(ten.with_classes(4)) == before.classifier_gap(ten.with_classes(4))
    arch = corner_archs(ten, 20)["d2-e3-k3"]
    old_key = new_key.replace("output:100", "output:10")
    difference = after.entries[new_key]["median_ms"] - after.entries[old_key]["median_ms"]
    assert after.unit_sum(hundred, arch) == pytest.approx(after.unit_sum(ten, arch) + difference)
    code, _, err = _profile(capsys, table_path, "--calibration-samples", "0", "--classes", "1")
    assert code == 2 and "a classifier needs at least 2 classes" in err


def test_validate_measures_now_instead_of_reporting_stored_points(capsys, tmp_path):
    """A table's stored validation (e.g. a shipped one, made elsewhere) is never reported as this run's."""
    table_path = tmp_path / "ort.json"
    assert _profile(capsys, table_path)[0] == 0
    validate = ("latency", "validate", "--table", str(table_path), "--samples", "3", "--runs", "3", "--rounds", "1")
    assert run(capsys, *validate, "--json")[0] == 0
    data = json.loads(table_path.read_text())
    for point in data["validation"]["points"]:
        point["measured_ms"] = 1000.0  # what another machine might have stored
    table_path.write_text(json.dumps(data))
    code, out, err = run(capsys, *validate, "--json")
    assert code == 0, err
    assert json.loads(out)["uncalibrated"]["mean_bias"] > -0.9  # measured now, not against the 1000 ms
    assert all(p["measured_ms"] < 1000.0 for p in load_table(table_path).validation["points"])
    code, _, err = run(capsys, "latency", "validate", "--table", str(table_path), "--samples", "1")
    assert code == 2 and err.count("\n") == 1 and "--samples" in err


def test_profile_refuses_a_table_measured_differently(capsys, tmp_path):
    table_path = tmp_path / "ort.json"
    assert _profile(capsys, table_path)[0] == 0
    code, _, err = _profile(capsys, table_path, "--precision", "int8")
    assert code == 2
    assert err.count("\n") == 1 and "precision 'fp32' (requested 'int8')" in err
    code, _, err = _profile(capsys, table_path, "--space", "mbv3-w1.0", "--resolutions", "224")
    assert code == 2 and "not 'mbv3-w1.0'" in err
    # A table from another machine is not silently "resumed" (its entries would be kept as is).
    data = json.loads(table_path.read_text())
    data["backend"]["device_detail"] = "Some Other CPU"
    table_path.write_text(json.dumps(data))
    code, _, err = _profile(capsys, table_path)
    assert code == 2 and "measured with device 'Some Other CPU'" in err


def test_bad_inputs_give_one_line(capsys, tmp_path):
    corrupt = tmp_path / "t.json"
    corrupt.write_text("{ not json")
    arch = tmp_path / "a.json"
    run(capsys, "arch", "sample", "--seed", "1", "--out", str(arch))
    for args, expected in [
        (("latency", "predict", "--table", str(corrupt), "--arch", str(arch)), "not valid JSON"),
        (("latency", "predict", "--table", "no-such-table", "--arch", str(arch)), "no latency table 'no-such-table'"),
        (("profile", "--backend", "nope"), "unknown backend 'nope'"),
        (("profile", "--resolutions", "21"), "resolution 21 is not in space"),
        (("profile", "--option", "novalue"), "--option expects KEY=VALUE"),
        (("profile", "--backend", "tensorrt"), "not available here"),
        (
            ("profile", "--backend", "tflite", "--device", "pixel9", "-O", f"devices_file={tmp_path}/none"),
            "device 'pixel9' is not named in",
        ),
    ]:
        code, _, err = run(capsys, *args)
        assert code == 2 and err.count("\n") == 1 and expected in err, (args, err)


def test_tables_import_cli(capsys, tmp_path):
    from ofa_edge import get_space
    from ofa_edge.latency.units import space_units

    yaml_path = tmp_path / "224_lookup_table.yaml"
    yaml_path.write_text("".join(f"{u.key}:\n  count: 5\n  mean: 0.25\n  var: 0.01\n"
                                 for u in space_units(get_space("mbv3-w1.0"), (224,))))  # fmt: skip
    out = tmp_path / "imported.json"
    code, stdout, err = run(capsys, "tables", "import", str(yaml_path), "--device", "note10", "--out", str(out),
                            "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["resolutions"] == [224]
    arch = tmp_path / "a.json"
    run(capsys, "arch", "sample", "--space", "mbv3-w1.0", "--max", "-r", "224", "--out", str(arch))
    code, stdout, _ = run(capsys, "latency", "predict", "--table", str(out), "--arch", str(arch), "--json")
    assert code == 0 and json.loads(stdout)["sum_ms"] == pytest.approx(0.25 * (1 + 1 + 20 + 4))


def test_killed_profile_resumes_where_it_stopped(tmp_path):
    """kill -9 during a real profile; the same command then measures only what is missing."""
    from ofa_edge import get_space
    from ofa_edge.latency.units import space_units

    total = len(space_units(get_space("mbv3-fmnist"), (20, 24)))
    out = tmp_path / "t.json"
    command = [sys.executable, "-m", "ofa_edge.cli", "profile", "--resolutions", "20,24", "--out", str(out),
               "--runs", "30", "--warmup", "2", "--calibration-samples", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    partial = 0
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists():
            partial = len(json.loads(out.read_text())["entries"])  # atomic writes: always whole JSON
            if partial >= 20:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 20 <= partial < total, "the profile finished before it could be killed"
    before = json.loads(out.read_text())
    assert before["complete"] is False
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming, {len(before['entries'])} of {total} already measured" in done.stderr
    after = json.loads(out.read_text())
    assert after["complete"] and len(after["entries"]) == total
    for key, entry in before["entries"].items():  # measured before the kill, kept as they were
        assert after["entries"][key] == entry


def test_user_tables_are_found_by_name_before_shipped_ones(capsys, tmp_path, monkeypatch):
    """A table in the user's folder under a shipped table's name is found first by `--table NAME`;
    `tables list` shows both, the shipped one marked as shadowed. (A bare `profile` of a few
    resolutions is named for them: tests/test_cli_safety.py.)"""
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "mine"))
    mine = tmp_path / "mine" / "onnxruntime-cpu-fp32-mbv3-fmnist.json"
    code, out, err = run(capsys, "profile", "--resolutions", RES, "--runs", "3", "--warmup", "1", "--rounds", "1",
                         "--calibration-samples", "0", "--out", str(mine), "--json")  # fmt: skip
    assert code == 0, err
    assert Path(json.loads(out)["table"]) == mine
    arch = tmp_path / "a.json"
    run(capsys, "arch", "sample", "--seed", "1", "-r", RES, "--out", str(arch))
    code, out, _ = run(capsys, "latency", "predict", "--table", "onnxruntime-cpu-fp32-mbv3-fmnist", "--arch",
                       str(arch), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["calibrated"] is False  # ours (uncalibrated), not the shipped one
    code, out, _ = run(capsys, "tables", "list", "--json")
    rows = [(r["name"], r["origin"], r["shadowed"]) for r in json.loads(out)["tables"]]
    assert ("onnxruntime-cpu-fp32-mbv3-fmnist", "user", False) in rows
    assert ("onnxruntime-cpu-fp32-mbv3-fmnist", "shipped", True) in rows


def test_calibrating_a_shipped_table_writes_a_copy(capsys, tmp_path, monkeypatch):
    """A shipped table is never modified; its calibration made here holds only this machine's points
    (the shipped one here stands for a table whose calibration was measured on another CPU)."""
    from ofa_edge.latency import store

    real = store.shipped_tables_dir() / "onnxruntime-cpu-fp32-mbv3-fmnist.json"
    shipped_dir = tmp_path / "shipped"
    shipped_dir.mkdir()
    data = json.loads(real.read_text())
    data["calibration"]["host"] = "Some Other CPU"
    shipped = shipped_dir / real.name
    shipped.write_text(json.dumps(data))
    monkeypatch.setattr(store, "shipped_tables_dir", lambda: shipped_dir)
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "mine"))
    before = shipped.read_bytes()
    code, out, err = run(capsys, "latency", "calibrate", "-t", "onnxruntime-cpu-fp32-mbv3-fmnist", "--samples", "2",
                         "--runs", "3", "--warmup", "1", "--rounds", "1", "--json")  # fmt: skip
    assert code == 0, err
    assert shipped.read_bytes() == before
    written = Path(json.loads(out)["table"])
    assert written.parent == tmp_path / "mine"
    calibration = load_table(written).calibration
    assert len(calibration.points) == 2 + 16  # 2 random subnets and the 16 corners, none of the shipped points
    assert calibration.host not in ("", "Some Other CPU")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("latency", "calibrate", "-t", "onnxruntime-cpu-fp32-mbv3-fmnist", "--samples", "0"), "--samples"),
        (("latency", "calibrate", "-t", "onnxruntime-cpu-fp32-mbv3-fmnist", "--samples", "-3"), "--samples"),
        (("profile", "--calibration-samples", "-3"), "calibration samples must be 0"),
        (("profile", "--threads", "0"), "--threads"),
    ],
)
def test_bad_counts_are_refused_before_any_work(capsys, tmp_path, monkeypatch, args, expected):
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path))
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_interrupted_profile_says_how_to_resume(tmp_path):
    out = tmp_path / "t.json"
    command = [sys.executable, "-m", "ofa_edge.cli", "profile", "--resolutions", "20,24", "--out", str(out),
               "--runs", "30", "--warmup", "2", "--calibration-samples", "0"]  # fmt: skip
    # Ctrl-C's default action in the child even when this test runs in the background (a shell's
    # background job starts with SIGINT ignored, and the child would inherit that).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "profile stopped" in stderr and "run the same command again to resume" in stderr
    assert json.loads(out.read_text())["complete"] is False
