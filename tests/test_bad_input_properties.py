"""Property-based: random arch JSON, table JSON and option values given to the commands.

Whatever the input, a refused command prints exactly one ``error:`` line, exits with 2, shows no
traceback and changes no file (neither the user's nor a shipped table).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ofa_edge import ArchError, get_space
from ofa_edge.cli import main
from ofa_edge.latency.store import shipped_tables_dir

SPACE = get_space("mbv3-fmnist")
TABLE = "onnxruntime-cpu-fp32-mbv3-fmnist"
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=25) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=30,
)


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_refused(tmp_path: Path, *args: str) -> str:
    """Run the CLI; assert it refused in one line and changed nothing. Returns the line."""
    before = _fingerprint(tmp_path), _fingerprint(shipped_tables_dir())
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    text = err.getvalue()
    assert code == 2, (args, text)
    assert text.count("\n") == 1 and text.startswith("error: "), (args, text)
    assert "Traceback" not in text and out.getvalue() == ""
    assert (_fingerprint(tmp_path), _fingerprint(shipped_tables_dir())) == before
    return text


def _is_valid_arch(data: object) -> bool:
    try:
        SPACE.validate(data)  # type: ignore[arg-type]
    except (ArchError, TypeError, AttributeError):
        return False
    return True


arch_like = st.fixed_dictionaries(
    {
        "ks": st.lists(st.integers(0, 9), min_size=18, max_size=22),
        "e": st.lists(st.integers(0, 9), min_size=18, max_size=22),
        "d": st.lists(st.integers(0, 6), min_size=4, max_size=6),
        "r": st.integers(0, 40),
    }
)


@PROPERTY
@given(data=json_values | arch_like)
def test_random_arch_json(tmp_path, data):
    assume(not _is_valid_arch(data))
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(data))
    _run_refused(tmp_path, "arch", "info", str(arch))
    _run_refused(tmp_path, "latency", "predict", "--table", TABLE, "--arch", str(arch))


@pytest.fixture(scope="module")
def table_data() -> dict:
    return json.loads((shipped_tables_dir() / f"{TABLE}.json").read_text())


_REQUIRED = ("schema", "schema_version", "space", "backend", "entries")


@PROPERTY
@given(
    field=st.sampled_from(_REQUIRED),
    value=json_values,
    drop=st.booleans(),
    entry_value=st.one_of(st.text(max_size=3), st.floats(max_value=-1e-3), st.just(float("nan")), st.none()),
    break_entry=st.booleans(),
)
def test_random_table_json(tmp_path, table_data, field, value, drop, entry_value, break_entry):
    data = copy.deepcopy(table_data)
    if break_entry:
        data["entries"][next(iter(data["entries"]))]["median_ms"] = entry_value
    elif drop:
        del data[field]
    else:
        assume(value != data[field])
        data[field] = value
    table = tmp_path / "t.json"
    table.write_text(json.dumps(data))
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps(SPACE.sample(0).to_dict()))
    _run_refused(tmp_path, "latency", "predict", "--table", str(table), "--arch", str(arch))


@PROPERTY
@given(
    threads=st.integers(-5, 0),
    samples=st.one_of(st.integers(-20, -1), st.just(1)),
    resolutions=st.text(alphabet="abc,;- 9", min_size=1, max_size=6),
    which=st.integers(0, 4),
)
def test_random_option_values(tmp_path, threads, samples, resolutions, which):
    out = str(tmp_path / "t.json")
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps(SPACE.sample(0).to_dict()))
    if which == 0:
        _run_refused(tmp_path, "profile", "--threads", str(threads), "--out", out)
    elif which == 1:
        _run_refused(tmp_path, "profile", "--calibration-samples", str(samples), "--out", out)
    elif which == 2:
        assume(not all(part.strip().isdigit() and int(part) in SPACE.resolutions for part in resolutions.split(",")))
        _run_refused(tmp_path, "profile", "--resolutions", resolutions, "--out", out, "--calibration-samples", "0")
    elif which == 3:
        _run_refused(tmp_path, "latency", "validate", "--table", TABLE, "--samples", str(min(samples, 1)))
    else:
        _run_refused(tmp_path, "arch", "sample", "-r", str(threads + 19), "--out", out)
