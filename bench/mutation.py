"""Mutation testing of the code that decides what ships: do the fast tests notice when it breaks?

mutmut (3.x) rewrites the in-scope functions one small change at a time (a ``<`` made ``<=``, a
constant changed, a call's argument dropped...) and runs the fast tests that reach the changed
function against each such *mutant*; a mutant that no test fails on has *survived*. In scope:

- ``ofa_edge/export/verify.py``       the fp32 gate, top-1 agreement, the int8/fp16 floor
- ``ofa_edge/export/staging.py``      temp names, commit/abort, stale temps of dead processes
- ``ofa_edge/search/budget.py``       budget parsing
- ``ofa_edge/latency/table.py``       the ``Calibration`` class only (prediction's fit and formula)
- ``ofa_edge/nn/bn_calibration.py``   BatchNorm recalibration
- ``ofa_edge/nn/checkpoint.py``       ``official_key_to_ours`` only (official checkpoint key names)
- ``ofa_edge/search/evolution.py``    ``Constrained.feasible`` only (which subnets meet every budget)

The tests run per mutant are fast ones only (``-m "not slow"``): tests/test_export_unit.py,
tests/test_mutation_kills.py, tests/test_latency_table.py, tests/test_checkpoint.py,
tests/test_bad_input_properties.py, and the budget tests of tests/test_search.py and the
BatchNorm recalibration tests of tests/test_supernet.py.

The checkout is not touched: the tracked and untracked-but-not-ignored files are copied into a
scratch folder, whose pyproject.toml gets the ``[tool.mutmut]`` section, and mutmut runs there
(one worker, one thread). In that copy only, ``@torch.no_grad()`` above ``recalibrate_bn`` is
rewritten as the equivalent ``recalibrate_bn = torch.no_grad()(recalibrate_bn)`` after it:
mutmut does not mutate decorated functions.

Mutants listed in ``EQUIVALENT`` (found by reading each survivor: no input can tell them from the
original) are reported apart and left out of the score, which is killed / (mutants - equivalent).
A mutant is recognised by its function and the line it changes, not by mutmut's number.

    python bench/mutation.py                   # about 2 min on a 2-core VM (1 worker)
    python bench/mutation.py --modules verify staging --keep /tmp/mut

Installs mutmut into this interpreter's environment if it is missing. Prints a table on stderr
and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent

# module key -> (file, the mutmut names of its mutants in scope)
MODULES: dict[str, tuple[str, list[str]]] = {
    "verify": ("ofa_edge/export/verify.py", ["ofa_edge.export.verify.*"]),
    "staging": ("ofa_edge/export/staging.py", ["ofa_edge.export.staging.*"]),
    "budget": ("ofa_edge/search/budget.py", ["ofa_edge.search.budget.*"]),
    "calibration": (
        "ofa_edge/latency/table.py",
        ["ofa_edge.latency.table.xǁCalibrationǁ*", "ofa_edge.latency.table.x__point_resolution__mutmut_*"],
    ),
    "bn_calibration": ("ofa_edge/nn/bn_calibration.py", ["ofa_edge.nn.bn_calibration.*"]),
    "official_keys": ("ofa_edge/nn/checkpoint.py", ["ofa_edge.nn.checkpoint.x_official_key_to_ours__mutmut_*"]),
    "feasibility": ("ofa_edge/search/evolution.py", ["ofa_edge.search.evolution.xǁConstrainedǁfeasible__mutmut_*"]),
}

TEST_FILES = [
    "tests/test_export_unit.py",
    "tests/test_mutation_kills.py",
    "tests/test_latency_table.py",
    "tests/test_checkpoint.py",
    "tests/test_bad_input_properties.py",
    "tests/test_search.py",
    "tests/test_supernet.py",
]
TEST_FILTER = (
    "test_export_unit or test_mutation_kills or test_latency_table or test_checkpoint or test_bad_input_properties"
    " or (test_search and budget) or (test_supernet and bn_recalibration)"
)

# (function, the mutant's changed line) -> why no input can tell it from the original.
_POINTS_ARE_NUMBERS = "points hold int or float numbers; numpy promotes ints to float in every later operation"
EQUIVALENT: dict[tuple[str, str], str] = {
    ("Calibration.scale",
     "return self.a + self.d * (np.asarray(resolution, float) - self.r0) if (self.d) or True else self.a"):
        "with d == 0 both branches give a (apply passes one finite resolution)",
    ("Calibration.scale", "return self.a + self.d * (np.asarray(resolution, None) - self.r0) if self.d else self.a"):
        "an int resolution minus the float r0 is float anyway",
    ("Calibration.scale", "return self.a + self.d * (np.asarray(resolution, ) - self.r0) if self.d else self.a"):
        "an int resolution minus the float r0 is float anyway",
    ("Calibration.apply", "scale = self.a if (resolution is None) and False else float(self.scale(resolution))"):
        "without a resolution d is 0 (else it raised above), and scale(None) is then a",
    ("Calibration._fit", "return np.linalg.lstsq(design / measured[:, None], np.ones_like(measured), )[0]"):
        "rcond=None is numpy's default since 2.0 (installed here; numpy 1.x warns and cuts off differently)",
    ("Calibration.refit", 'sums = np.array([p["sum_ms"] for p in self.points], None)'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", 'sums = np.array([p["sum_ms"] for p in self.points], )'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", 'counts = np.array([p["units"] for p in self.points], None)'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", 'counts = np.array([p["units"] for p in self.points], )'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", 'measured = np.array([p["measured_ms"] for p in self.points], None)'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", 'measured = np.array([p["measured_ms"] for p in self.points], )'): _POINTS_ARE_NUMBERS,
    ("Calibration.refit", "resolutions = np.array([_point_resolution(p) for p in self.points], None)"):
        "_point_resolution returns floats",
    ("Calibration.refit", "resolutions = np.array([_point_resolution(p) for p in self.points], )"):
        "_point_resolution returns floats",
    ("Calibration.refit",
     "self.r0 = float(np.median(resolutions)) if (not np.isnan(resolutions).any()) or True else 0.0"):
        "with a missing resolution the d term is never a candidate, so r0 is reset to 0.0 after the fit",
    ("Calibration.refit", "self.r0 = float(np.median(resolutions)) if not np.isnan(resolutions).any() else 1.0"):
        "with a missing resolution the d term is never a candidate, so r0 is reset to 0.0 after the fit",
    ("Calibration.refit", "usable = 5"): "there are 4 models: terms <= 4 and terms <= 5 select the same",
    ("_BatchStats.__call__", "var = (x - mean.view(-1, 1, 1)).square().mean(dim=(0, 2, 3))"):
        "a (C, 1, 1) view broadcasts against (N, C, H, W) exactly as (1, C, 1, 1) does",
    ("recalibrate_bn", "module.running_mean[:channels] = (acc.mean_sum / acc.count).to(None)"):
        "slice assignment casts to the buffer's dtype anyway",
    ("recalibrate_bn", "module.running_var[:channels] = (acc.var_sum / acc.count).to(None)"):
        "slice assignment casts to the buffer's dtype anyway",
}  # fmt: skip

DECORATED = ("ofa_edge/nn/bn_calibration.py", "@torch.no_grad()\ndef recalibrate_bn(", "recalibrate_bn")


def ensure_mutmut() -> None:
    if importlib.util.find_spec("mutmut") is None:
        print("mutmut is not installed here: installing it (python -m pip install mutmut)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mutmut"], check=True)


def scratch_copy(dest: Path) -> None:
    """The checkout's tracked and untracked-not-ignored files, copied to ``dest``."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listing):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def configure(dest: Path, modules: list[str]) -> None:
    """The [tool.mutmut] section in the copy's pyproject.toml, and the decorator rewrite."""
    files = [MODULES[m][0] for m in modules]
    config = {
        "source_paths": ["ofa_edge"],
        "only_mutate": files,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-m", "not slow", "-W", "ignore"],
        "pytest_add_cli_args_test_selection": [*TEST_FILES, "-k", TEST_FILTER],
        "use_git_change_detection": False,
    }
    section = "\n[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in config.items())
    pyproject = dest / "pyproject.toml"
    assert "[tool.mutmut]" not in pyproject.read_text()
    pyproject.write_text(pyproject.read_text() + section)
    path, decorated, name = DECORATED
    if path in files:
        source = (dest / path).read_text()
        if decorated not in source:
            sys.exit(f"{path}: expected {decorated!r} to rewrite; update DECORATED in bench/mutation.py")
        source = source.replace(decorated, f"def {name}(")
        (dest / path).write_text(source + f"\n\n{name} = torch.no_grad()({name})\n")


def changed_lines(mutants_file: Path) -> dict[str, tuple[str, str]]:
    """Each mutant function's name -> (the function it mutates, its changed line(s))."""
    source = mutants_file.read_text()
    lines = source.splitlines()
    functions: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name:
            functions[node.name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    found = {}
    for name, text in functions.items():
        base, _, tag = name.rpartition("__mutmut_")
        if tag == "orig":
            continue
        original = functions.get(f"{base}__mutmut_orig", "").splitlines()
        diff = difflib.unified_diff(original, text.splitlines(), n=0, lineterm="")
        added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
        body = [line for line in added if not line.startswith("def ")]
        found[name] = (base, " | ".join(body) or "(signature)")
    return found


def matches(name: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(name, p) for p in patterns)


def collect(dest: Path, modules: list[str]) -> dict:
    status_of = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout",
                 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}  # fmt: skip
    report: dict = {"modules": {}, "survivors": [], "equivalent": []}
    for key in modules:
        path, patterns = MODULES[key]
        meta = json.loads((dest / "mutants" / f"{path}.meta").read_text())
        lines = changed_lines(dest / "mutants" / path)
        prefix = path[: -len(".py")].replace("/", ".") + "."
        counts = {"mutants": 0, "killed": 0, "timeout": 0, "survived": 0, "equivalent": 0, "other": 0}
        for name, code in sorted(meta["exit_code_by_key"].items(), key=lambda kv: _number(kv[0])):
            if not matches(name, patterns):
                continue
            counts["mutants"] += 1
            status = status_of.get(code, "suspicious")
            function, line = lines.get(name[len(prefix) :], ("?", "?"))
            function = function[2:].replace("ǁ", ".")  # "xǁClassǁmethod" or "x_function"
            reason = EQUIVALENT.get((function, line))
            if status in ("killed", "timeout"):
                counts[status] += 1
                if reason:
                    print(f"note: {name} is listed as equivalent but was killed", file=sys.stderr)
            elif reason:
                counts["equivalent"] += 1
                report["equivalent"].append({"mutant": name, "function": function, "line": line, "why": reason})
            else:
                counts["survived" if status == "survived" else "other"] += 1
                report["survivors"].append({"mutant": name, "status": status, "function": function, "line": line})
        scored = counts["mutants"] - counts["equivalent"]
        counts["score"] = round((counts["killed"] + counts["timeout"]) / scored, 4) if scored else None
        report["modules"][key] = counts
    total = {k: sum(m[k] for m in report["modules"].values()) for k in ("mutants", "killed", "timeout", "survived",
                                                                         "equivalent", "other")}  # fmt: skip
    scored = total["mutants"] - total["equivalent"]
    total["score"] = round((total["killed"] + total["timeout"]) / scored, 4) if scored else None
    report["total"] = total
    return report


def _number(name: str) -> int:
    tail = name.rpartition("__mutmut_")[2]
    return int(tail) if tail.isdigit() else -1


def machine() -> str:
    model = platform.processor()
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.*)", text).group(1)
        flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "pre-AVX2"
        extras = [n for f, n in (("amx_tile", "AMX"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16")) if f in flags]
        if extras and isa == "AVX-512":
            isa += " with " + (extras[0] if extras[0] == "AMX" else " and ".join(extras))
    except (OSError, AttributeError):
        isa = "?"
    return f"{model}, {isa}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", choices=list(MODULES), default=list(MODULES))
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp folder, removed)")
    args = parser.parse_args()
    ensure_mutmut()
    console = Console(stderr=True, width=140)
    dest = args.keep or Path(tempfile.mkdtemp(prefix="ofa-edge-mutation-"))
    if args.keep:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
    scratch_copy(dest)
    configure(dest, args.modules)
    patterns = [p for m in args.modules for p in MODULES[m][1]]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OFA_EDGE_TABLES=str(dest / ".tables"))  # fmt: skip
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *patterns]
    console.print(f"mutmut in {dest}: {' '.join(command[1:])}")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=dest, env=env, stdout=sys.stderr, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"mutmut failed with status {done.returncode}; its folder is kept: {dest}")
    report = collect(dest, args.modules)
    report.update(wall_s=round(wall, 1), machine=machine(), mutmut=_mutmut_version(),
                  command="python bench/mutation.py " + " ".join(sys.argv[1:]))  # fmt: skip

    table = Table(title=f"mutation testing ({report['wall_s']:.0f} s, {report['machine']})")
    for column in ("module", "mutants", "killed", "timeout", "survived", "equivalent", "other", "score"):
        table.add_column(column, justify="left" if column == "module" else "right")
    for key, c in [*report["modules"].items(), ("total", report["total"])]:
        score = "-" if c["score"] is None else f"{100 * c['score']:.1f}%"
        table.add_row(key, *(str(c[k]) for k in ("mutants", "killed", "timeout", "survived", "equivalent", "other")),
                      score)  # fmt: skip
    console.print(table)
    for s in report["survivors"]:
        console.print(f"survived: {s['mutant']} ({s['status']}) {s['function']}: {s['line']}", highlight=False)
    for s in report["equivalent"]:
        console.print(f"equivalent: {s['mutant']} {s['function']}: {s['line']} ({s['why']})", highlight=False)
    if not args.keep:
        shutil.rmtree(dest, ignore_errors=True)
    print(json.dumps(report))


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    main()
