"""The train and eval commands end to end, on synthetic IDX files (the MNIST layout)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from ofa_edge.cli import main
from ofa_edge.nn.checkpoint import load_supernet


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 400), ("t10k", 100)):
        labels = rng.integers(0, 10, n)
        images = (rng.random((n, 28, 28)) * 80 + labels[:, None, None] * 17).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return directory


@pytest.mark.slow
def test_train_then_eval(capsys, tmp_path, idx_dir):
    out = tmp_path / "run"
    code = main(["train", "--schedule", "quick", "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(out), "--threads", "1", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 24 and not summary["resumed"]
    assert set(summary["test_top1"]) == {"28", "20"} and len(summary["test_top1"]["28"]) == 8
    for name in ("supernet.safetensors", "teacher.safetensors", "checkpoint.safetensors", "log.jsonl",
                 "config.json", "report.json"):  # fmt: skip
        assert (out / name).exists(), name
    assert len((out / "log.jsonl").read_text().splitlines()) == 6  # one line per epoch
    # the same command again finds the finished run and does no more steps
    code = main(["train", "--schedule", "quick", "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(out), "--threads", "1", "--json", "--no-report"])  # fmt: skip
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["resumed"] and again["steps"] == 24

    arch = tmp_path / "arch.json"
    main(["arch", "sample", "--seed", "1", "--out", str(arch)])
    capsys.readouterr()
    code = main(["eval", "--supernet", str(out / "supernet.safetensors"), "--arch", str(arch), "--data", "mnist",
                 "--data-dir", str(idx_dir), "--calibration-images", "64", "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["split"] == "val" and result["images"] == 80 and 0 <= result["top1"] <= 100
    code = main(["eval", "--supernet", str(out / "supernet.safetensors"), "--arch", str(arch), "--data", "mnist",
                 "--data-dir", str(idx_dir), "--split", "test", "--json"])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out)["images"] == 100
    # the weights remember the data and where it was read: no --data, no --data-dir
    code = main(["eval", "--supernet", str(out / "supernet.safetensors"), "--arch", str(arch), "--split", "test",
                 "--json"])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out)["images"] == 100


@pytest.mark.slow
def test_a_folder_of_12_classes_gets_a_12_way_classifier(capsys, tmp_path, idx_dir):
    pil = pytest.importorskip("PIL.Image")
    for split, per_class in (("train", 6), ("test", 2)):
        for c in range(12):
            folder = tmp_path / "data" / split / f"class{c:02d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pil.new("L", (28, 28), c * 20 + i).save(folder / f"{i}.png")
    data, out = str(tmp_path / "data"), tmp_path / "run"
    code = main(["train", "--schedule", "quick", "--data", data, "--out", str(out), "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "the classifier gets 12 outputs" in captured.err
    assert load_supernet(out / "supernet.safetensors").space.num_classes == 12
    arch = tmp_path / "arch.json"
    main(["arch", "sample", "--seed", "1", "--out", str(arch)])
    capsys.readouterr()
    code = main(
        ["eval", "--supernet", str(out / "supernet.safetensors"), "--arch", str(arch), "--data", data, "--json"]
    )
    assert code == 0 and json.loads(capsys.readouterr().out)["images"] > 0
    # the shipped demo has 10 outputs: one line, no traceback
    code = main(["eval", "--supernet", "demo", "--arch", str(arch), "--data", data])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has 12 classes but this supernet's classifier has 10" in err
    # a supernet trained on Fashion-MNIST, scored on (synthetic) MNIST: said, then scored
    code = main(["eval", "--supernet", "demo", "--arch", str(arch), "--data", "mnist", "--data-dir", str(idx_dir),
                 "--val-images", "80", "--calibration-images", "64"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "trained on fashion-mnist, not mnist" in err, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--out", "{tmp}/r", "--data", "fashion-mnist", "--data-dir", "{tmp}"], "pass --data-dir DIR"),
        (["train", "--out", "{tmp}/r", "--data", "mnist"], "MNIST needs --data-dir"),
        (["train", "--out", "{tmp}/r", "--schedule", "fast"], "unknown schedule 'fast'"),
        (["train"], "Missing option '--out'"),
        (["train", "--out", "{tmp}/r", "--init-from", "{tmp}/none.safetensors"], "checkpoint not found"),
        (["eval", "--supernet", "{tmp}/none.safetensors", "--arch", "{tmp}/a.json"], "checkpoint not found"),
        (["train", "--out", "{tmp}/r", "--threads", "0"], "'--threads': Input should be greater than or equal to 1"),
        (
            ["eval", "--arch", "{tmp}/a.json", "--threads", "0"],
            "'--threads': Input should be greater than or equal to 1",
        ),
    ],
)
def test_train_and_eval_bad_input(capsys, tmp_path, args, fragment):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes(tmp_path, idx_dir):
    """A real SIGKILL of the CLI process mid-run; the rerun ends with the uninterrupted weights."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    from ofa_edge.nn.checkpoint import load_supernet, read_metadata

    def command(out):
        return [sys.executable, "-m", "ofa_edge.cli", "train", "--schedule", "quick", "--data", "mnist",
                "--data-dir", str(idx_dir), "--out", str(out), "--threads", "1", "--checkpoint-every", "2",
                "--no-report", "--json"]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command(tmp_path / "straight"), check=True, capture_output=True, env=env, timeout=600)
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint = killed / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        position = json.loads(read_metadata(checkpoint).get("position", '{"step": 0}'))
        if position["step"] >= 9:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "supernet.safetensors").exists(), "killed before the end"
    resumed = subprocess.run(command(killed), check=True, capture_output=True, text=True, env=env, timeout=600)
    assert json.loads(resumed.stdout)["resumed"]
    a = load_supernet(tmp_path / "straight" / "supernet.safetensors").state_dict()
    b = load_supernet(killed / "supernet.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
