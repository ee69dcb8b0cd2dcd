#!/usr/bin/env bash
# Set up ofa-edge on a fresh machine: a virtual environment in .venv with the package (editable),
# its test tools, and the reference OFA implementation as an optional test oracle.
# Safe to re-run; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[test]"
# The reference implementation (pip 'ofa') is only a test oracle. Its declared dependencies
# include torchvision, which does not import beside the CPU torch, so install it alone; the
# tests give it stand-ins for the torchvision/PIL names it imports.
"${pip[@]}" --no-deps "ofa==0.1.0.post202307202001" \
    || echo "warning: could not install the reference package 'ofa'; reference-parity tests will skip" >&2
echo "ofa-edge is set up in .venv (try: .venv/bin/ofa-edge --help)" >&2
