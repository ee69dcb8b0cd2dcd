import json
import subprocess
import sys

import pytest

from ofa_edge import SPACE_NAMES, get_space
from ofa_edge.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_space_show_json(capsys):
    code, out, _ = run(capsys, "space", "show", "mbv3-w1.0", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["supernet_params"] == 7_678_880
    assert info["max_macs"] == get_space("mbv3-w1.0").macs(get_space("mbv3-w1.0").max_arch(224))
    assert len(info["stages"]) == 5


def test_space_show_table_and_list(capsys):
    code, out, _ = run(capsys, "space", "show", "mbv3-fmnist")
    assert code == 0 and "supernet params" in out
    code, out, _ = run(capsys, "space", "list", "--json")
    assert [s["name"] for s in json.loads(out)["spaces"]] == list(SPACE_NAMES)


def test_arch_sample_is_seeded_and_valid(capsys, tmp_path):
    _, first, _ = run(capsys, "arch", "sample", "--space", "mbv3-w1.2", "--seed", "4", "--json")
    _, second, _ = run(
        capsys, "arch", "sample", "--space", "mbv3-w1.2", "--seed", "4", "--out", str(tmp_path / "a.json")
    )
    assert json.loads(first) == json.loads(second) == json.loads((tmp_path / "a.json").read_text())
    get_space("mbv3-w1.2").validate(json.loads(first))


def test_arch_sample_max_min_and_resolution(capsys):
    _, out, _ = run(capsys, "arch", "sample", "--max", "-r", "24", "--json")
    arch = json.loads(out)
    assert set(arch["ks"]) == {7} and set(arch["d"]) == {4} and arch["r"] == 24
    _, out, _ = run(capsys, "arch", "sample", "--min", "--json")
    assert json.loads(out)["r"] == 20


def test_arch_info_json(capsys, tmp_path):
    space = get_space("mbv3-w1.0")
    path = tmp_path / "max.json"
    path.write_text(json.dumps(space.max_arch(224).to_dict()))
    code, out, _ = run(capsys, "arch", "info", str(path), "--space", "mbv3-w1.0", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["macs"] == 566_170_656 and info["depths"] == [4] * 5 and info["resolution"] == 224
    assert info["stages"][0]["kernels"] == [7, 7, 7, 7] and info["stages"][0]["mid_channels"] == [96, 144, 144, 144]
    assert info["params"] == space.params(space.max_arch())


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["arch", "info", "missing.json"], "arch file not found: missing.json"),
        (["arch", "sample", "--space", "nope"], "unknown space 'nope'"),
        (["arch", "sample", "--seed", "x"], "Invalid value for '--seed'"),
        (["arch", "sample", "--max", "--min"], "exclude each other"),
        (["arch", "sample", "-r", "30"], "'r': 30 is not allowed"),
        (["space", "show", "mbv3-w9"], "unknown space 'mbv3-w9'"),
        (["arch", "info"], "Missing argument"),
    ],
)
def test_bad_input_is_one_line_on_stderr(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err


def test_bad_arch_file_content(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"ks": [3, 5], "e": [3], "d": [2], "r": 28')
    code, _, err = run(capsys, "arch", "info", str(path))
    assert code == 2 and "not valid JSON" in err
    path.write_text(json.dumps({**get_space("mbv3-fmnist").max_arch().to_dict(), "d": [4, 4, 5, 4, 4]}))
    code, _, err = run(capsys, "arch", "info", str(path))
    assert code == 2 and "'d' index 2: 5 is not allowed" in err and "allowed: 2, 3, 4" in err


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ofa_edge.cli", "arch", "info", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "arch file not found" in result.stderr


def test_messages_and_table_cells_keep_square_brackets():
    # rich takes '[openvino]' for a style tag: a pip command in the backends table lost its extra.
    from rich.table import Table

    from ofa_edge.cli.common import err

    table = Table("why not")
    table.add_row("openvino is not installed: pip install 'ofa-edge[openvino]'")
    with err.capture() as captured:
        err.print(table)
        err.print("wrote runs/[exp1]/table.json")
    assert "ofa-edge[openvino]" in captured.get()
    assert "runs/[exp1]/table.json" in captured.get()
