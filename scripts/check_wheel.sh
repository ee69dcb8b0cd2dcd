#!/usr/bin/env bash
# The install a user gets: build the wheel, install it (not editable, core dependencies only) into a
# fresh venv, and run the README's main job from a folder outside the checkout. Prints the sizes of
# the core and the full ([all]) installs for BENCHMARKS.md.
# Usage: bash scripts/check_wheel.sh [WORKDIR]   (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-$(mktemp -d /tmp/ofa-edge-wheel.XXXXXX)}
mkdir -p "$work"
PYTHON=${PYTHON:-python3}
pip_quiet=(--quiet --disable-pip-version-check)

rm -rf "$work/dist" && "$PYTHON" -m pip wheel "${pip_quiet[@]}" --no-deps -w "$work/dist" "$root"
wheel=$(ls "$work"/dist/ofa_edge-*.whl)
rm -rf "$work/core" && "$PYTHON" -m venv "$work/core"
# torch first and pinned (an unpinned torch pulls a multi-GB CUDA build).
"$work/core/bin/python" -m pip install "${pip_quiet[@]}" "torch==2.13.0"
"$work/core/bin/python" -m pip install "${pip_quiet[@]}" "$wheel"

run=$(mktemp -d "$work/run.XXXXXX")
cd "$run"
ofa="$work/core/bin/ofa-edge"
echo "== core install, from $run" >&2
"$ofa" backends
"$ofa" backends --json | "$work/core/bin/python" -c '
import json, sys
rows = {r["backend"]: r for r in json.load(sys.stdin)["backends"]}
assert rows["onnxruntime"]["available"], rows["onnxruntime"]
for name, extra in (("openvino", "openvino"), ("tflite", "tflite")):
    assert not rows[name]["available"] and f"ofa-edge[{extra}]" in rows[name]["detail"], rows[name]
print("core install: onnxruntime available; openvino and tflite name their extras", file=sys.stderr)
'
# The README's main job (see README.md, "Set-up and the two commands"): with the core only, it
# deploys to ONNX, fp32 and int8, measured on this CPU.
"$ofa" deploy --json > deploy.json
"$work/core/bin/python" -c '
import json, sys
[d] = json.load(open("deploy.json"))["deployments"]
formats = [e["format"] for e in d["exports"]]
assert formats == ["onnx"], formats
files = [f["path"] for e in d["exports"] for f in e["files"]]
assert len(files) == 2, files
print("core deploy:", d["choice"]["arch"]["r"], "px;", ", ".join(files), file=sys.stderr)
'
"$ofa" tables list
# The official w1.2 supernet searched with the shipped OFA predictor and note10 table (package data).
"$ofa" specialize --supernet ofa_mbv3_d234_e346_k357_w1.2 --table note10 --budget 25ms --json > note10.json
"$work/core/bin/python" -c '
import json
[r] = json.load(open("note10.json"))["results"]
assert r["latency_ms"] <= 25 and 75 < r["accuracy"] < 85, r
print("core: official w1.2 on note10,", r["accuracy"], "% predicted,", round(r["latency_ms"], 2), "ms", flush=True)
'
du -sm "$work/core" | awk '{print "core venv MiB:", $1}' >&2
