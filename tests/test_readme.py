"""The README's Python example runs as written (in a scratch folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(section: str) -> str:
    text = README.read_text()
    start = text.index(f"## {section}")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


@pytest.mark.slow
def test_from_python_section_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "latency_tables"))
    exec(compile(_python_block("From Python"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "test top-1" in out and (tmp_path / "exported" / "subnet-fp32.onnx").exists()


def _tour() -> list[str]:
    """The command lines of the README's CLI tour, comments stripped."""
    text = README.read_text()
    start = text.index("## Command line")
    match = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert match, "no bash block under '## Command line'"
    return [line.split("  #")[0].strip() for line in match.group(1).splitlines() if line.strip()]


# Options appended to the tour's longer lines, so that the whole tour runs in a few minutes: the same
# commands on fewer images, subnets and timing runs (the demo's reproduction takes hours: its script
# is only parsed).
_SMALLER = {
    "ofa-edge eval": ["--calibration-images", "200"],
    "ofa-edge profile": ["--runs", "5", "--rounds", "1", "--calibration-samples", "4"],
    "ofa-edge latency validate": ["--samples", "4", "--runs", "5", "--rounds", "1"],
    "ofa-edge latency calibrate": ["--samples", "4", "--runs", "5", "--rounds", "1"],
    "ofa-edge predictor data": ["--samples", "25", "--repeats", "2", "--calibration-images", "200"],
    "ofa-edge export": ["--test-images", "300", "--calibration-images", "300"],
    "ofa-edge deploy": ["--test-images", "300"],
}


def _quick_sized(recipe: Path, folder: Path) -> Path:
    """``recipe`` with one epoch per phase on the quick preset's image counts."""
    import yaml

    from ofa_edge.train.schedule import get_schedule

    quick = get_schedule("quick")
    fields = yaml.safe_load(recipe.read_text())
    for name in ("batch_size", "images_per_epoch", "val_images", "test_images", "bn_calibration_images",
                 "epoch_val_images", "epoch_calibration_images"):  # fmt: skip
        fields[name] = getattr(quick, name)
    for phase in fields["phases"]:
        phase["epochs"] = 1
    small = folder / recipe.name
    small.write_text(yaml.safe_dump(fields))
    return small


@pytest.mark.slow
def test_the_cli_tour_runs_in_order_in_an_empty_folder(tmp_path, monkeypatch, capsys):
    import shlex
    import subprocess

    from ofa_edge.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "latency_tables"))
    monkeypatch.setenv("OFA_EDGE_HOME", str(tmp_path / "home"))
    lines = _tour()
    assert lines[0] == "ofa-edge weights list" and lines[-1].startswith("ofa-edge specialize --supernet ofa_mbv3")
    for line in lines:
        words = shlex.split(line)
        if words[0] == "bash":
            script = README.parent / words[1]
            assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, line
            continue
        if "recipes/" in line:  # a recipe of the checkout, at the quick preset's sizes
            words = [str(_quick_sized(README.parent / w, tmp_path)) if w.startswith("recipes/") else w for w in words]
        extra = next((v for k, v in _SMALLER.items() if line.startswith(k)), [])
        code = main(words[1:] + extra)
        err = capsys.readouterr().err
        assert code == 0, f"{line}: {err[-2000:]}"
