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
            folder.mkdir(parents=True, exist_ok=True)
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
        (["train", "--out", "{tmp}/r", "--schedule", "fmnist-distil"], "it is recipes/demo/05-distil.yaml"),
        (["train", "--out", "{tmp}/r", "--schedule", "{tmp}/none.yaml"], "schedule file"),
        (["train", "--out", "{tmp}/r", "--teacher", "init_from"], "teacher: init_from needs init_from"),
        (["train", "--out", "{tmp}/r", "--teacher-other-resolutions", "init"], "No such option"),
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


# ------------------------------------------------------------------ schedule files
QUICK_FILE = """# the quick preset, as a file, with the sandwich rule and a corner in its last phase
name: my-quick
batch_size: 16
images_per_epoch: 64
val_images: 80
test_images: 100
bn_calibration_images: 64
epoch_val_images: 64
epoch_calibration_images: 32
phases:
  - {name: full, epochs: 1, lr: 0.1, full_net: true}
  - {name: kernel, epochs: 1, lr: 0.03, kernel_choices: [3, 5, 7], expand_choices: [6], depth_choices: [4]}
  - {name: all, epochs: 1, lr: 0.02, subnets_per_step: 3, sandwich: true, corners: 1,
     sort_channels: true, trained_expands: [6]}
"""


@pytest.mark.slow
def test_train_from_a_yaml_schedule_file(capsys, tmp_path, idx_dir):
    schedule = tmp_path / "my.yaml"
    schedule.write_text(QUICK_FILE)
    out = tmp_path / "run"
    code = main(["train", "--schedule", str(schedule), "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(out), "--threads", "1", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 12 and set(summary["test_top1"]) == {"28", "20"}
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"]["name"] == "my-quick" and config["schedule"]["phases"][2]["corners"] == 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 3
    from ofa_edge.nn.checkpoint import read_metadata

    assert read_metadata(out / "supernet.safetensors")["schedule"] == "my-quick"
    # An edited file is another schedule: the finished run is not resumed with it.
    schedule.write_text(QUICK_FILE.replace("lr: 0.02", "lr: 0.03"))
    code = main(["train", "--schedule", str(schedule), "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(out), "--threads", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "differs in phase 'all'.lr" in err


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("batchsize: 8\nphases: [{name: a, epochs: 1, lr: 0.1, full_net: true}]\n",
         "unknown field 'batchsize' (did you mean 'batch_size'? allowed: name, phases,"),
        ("phases: [{name: a, epochs: 1, lr: 0.1, full_net: true}, {name: b, epochs: 1.5, lr: 0.1}]\n",
         "phase 2 ('b'): epochs must be an integer, got 1.5"),
        ("phases: [{name: a, epochs: 1, lr: 0.1, full_net: true}, {name: b, epochs: 1, lr: 0.1, corners: 2}]\n",
         "phase 2 ('b'): 2 corners do not fit its subnets_per_step (1)"),
        ("phases: [{name: a, epochs: 1, lr: 0.1, full_net: true}, {name: b, epochs: 1, lr: 0.1, depth_choices: [5]}]\n",
         "phase 'b': depth_choices [5] is not a non-empty subset of [2, 3, 4]"),
        ("phases: [{name: a, epochs: 1, lr: 0.1, subnets_per_step: 2}]\n", "no full-net phase to train a teacher"),
        ("phases: [{name: a, epochs: 1\n", "not valid YAML"),
        ("teacher: init_from\nphases: [{name: a, epochs: 1, lr: 0.1, full_net: true}]\n",
         "teacher: init_from needs init_from"),
    ],
)  # fmt: skip
def test_a_mistake_in_a_schedule_file_is_one_line_and_exit_2(capsys, tmp_path, idx_dir, text, fragment):
    (tmp_path / "s.yaml").write_text(text)
    code = main(["train", "--schedule", str(tmp_path / "s.yaml"), "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(tmp_path / "r")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ scripts/train_demo.sh
STUB = """#!{python}
# Stands in for python in scripts/train_demo.sh: runs -c snippets, records every other call and
# writes what that call would leave behind (a finished stage, a net trained alone).
import os, sys
from pathlib import Path

args = sys.argv[1:]
if args[0] == "-c":
    os.execv({python!r}, [{python!r}, *args])
with open(os.environ["CALLS"], "a") as calls:
    calls.write(" ".join(args) + "\\n")
out = Path(args[args.index("--out") + 1])
if args[:2] == ["-m", "ofa_edge.cli"]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "supernet.safetensors").write_text("weights")
    (out / "report.json").write_text("{{}}")
else:
    seed = args[args.index("--seed") + 1]
    folder = out / (args[args.index("--corners") + 1] + "-s" + seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "supernet.safetensors").write_text("weights")
"""


def run_demo_script(tmp_path: Path, root: Path) -> list[str]:
    import os
    import subprocess
    import sys

    stub = tmp_path / "python"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    env = {**os.environ, "PYTHON": str(stub), "CALLS": str(calls), "THREADS": "1"}
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_demo.sh"
    subprocess.run(["bash", str(script), str(root)], check=True, env=env, capture_output=True, timeout=300)
    return calls.read_text().splitlines()


def test_train_demo_chains_the_recipes_trains_the_teachers_first_and_skips_finished_stages(tmp_path):
    root = tmp_path / "demo"
    calls = run_demo_script(tmp_path, root)
    stages = [c.split("--out ")[1].split()[0] for c in calls]
    assert stages == ["01-fmnist", "02-extend", "03-sandwich", "04-sandwich", "alone", "05-distil", "06-corners",
                      "alone", "07-corners"]  # fmt: skip
    assert "--corners d4-e6-k7 --seed 0" in calls[4] and "--corners d4-e6-k3 --seed 0" in calls[7]
    assert all("--schedule " + str(Path(__file__).resolve().parents[1] / "recipes" / "demo") in c
               for c in calls if "ofa_edge.cli" in c)  # fmt: skip
    # Stopped after stage 5: a rerun trains only what is left, with the same commands.
    for stage in ("06-corners", "07-corners"):
        (root / stage / "report.json").unlink()
    (root / "alone" / "d4-e6-k3-s0" / "supernet.safetensors").unlink()
    again = run_demo_script(tmp_path, root)
    assert again == calls[6:]
