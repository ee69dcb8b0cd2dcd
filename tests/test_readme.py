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
