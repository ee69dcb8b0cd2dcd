#!/usr/bin/env bash
# Train the shipped demo supernet (ofa_edge/weights/mbv3-fmnist.safetensors) from scratch.
#
#   bash scripts/train_demo.sh [RUN_ROOT]          # default RUN_ROOT: runs/demo
#
# It runs the recipes in recipes/demo/ in order, each stage in RUN_ROOT/<stage> and started from
# the previous stage's weights (their init_from). Before a stage whose teacher is a net trained
# alone (alone/CORNER-sSEED/supernet.safetensors), it trains that net with bench/alone.py.
# The result is RUN_ROOT/07-corners/supernet.safetensors; its metadata lists the recipe files.
#
# Stopped at any point, the same command continues: a finished stage (its report.json is there)
# is skipped, a stopped one resumes from its last checkpoint. Cost: docs/training.md.
#
# Environment: PYTHON (default: the project's .venv, else python3), THREADS (torch threads,
# default: all cores), DEVICE (cpu, cuda or auto; default cpu), DATA_DIR (Fashion-MNIST's IDX
# files; default: the Debian package's).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN_ROOT=${1:-runs/demo}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
THREADS=${THREADS:-$(nproc)}
DEVICE=${DEVICE:-cpu}
DATA_DIR=${DATA_DIR:+$(cd "$DATA_DIR" && pwd)}  # absolute: the stages run inside RUN_ROOT
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

mkdir -p "$RUN_ROOT"
cd "$RUN_ROOT"  # the recipes' relative paths (init_from, teacher) are read from here
data_options=()
if [ -n "$DATA_DIR" ]; then data_options=(--data-dir "$DATA_DIR"); fi

# The teacher file a recipe names, if it is a file (not the run's own full net nor init_from).
teacher_file() {
    "$PYTHON" -c 'import sys
from ofa_edge.train.schedule_file import load_schedule_file
teacher = load_schedule_file(sys.argv[1]).teacher
print(teacher if teacher not in (None, "init_from") else "")' "$1"
}

# Train the net a teacher path names (alone/d4-e6-k7-s0/supernet.safetensors: corner d4-e6-k7,
# seed 0, in alone/) with bench/alone.py, which resumes a stopped corner in its folder too.
train_alone() {
    local folder name
    folder=$(dirname "$1")
    name=$(basename "$folder")
    if [[ ! $name =~ ^(d[0-9]+-e[0-9]+-k[0-9]+)-s([0-9]+)$ ]]; then
        echo "error: teacher $1 is missing, and its folder does not name a corner to train alone" >&2
        exit 2
    fi
    echo "== teacher ${BASH_REMATCH[1]} (seed ${BASH_REMATCH[2]}), trained alone in $(pwd)/$(dirname "$folder")"
    "$PYTHON" "$REPO/bench/alone.py" --corners "${BASH_REMATCH[1]}" --seed "${BASH_REMATCH[2]}" \
        --out "$(dirname "$folder")" --threads "$THREADS" --device "$DEVICE" "${data_options[@]}" >/dev/null
}

for recipe in "$REPO"/recipes/demo/*.yaml; do
    stage=$(basename "$recipe" .yaml)
    if [ -f "$stage/report.json" ]; then
        echo "== $stage: finished earlier ($(pwd)/$stage)"
        continue
    fi
    teacher=$(teacher_file "$recipe")
    if [ -n "$teacher" ] && [ ! -f "$teacher" ]; then
        train_alone "$teacher"
    fi
    echo "== $stage: $recipe"
    "$PYTHON" -m ofa_edge.cli train --space mbv3-fmnist --data fashion-mnist "${data_options[@]}" --seed 0 \
        --schedule "$recipe" --out "$stage" --threads "$THREADS" --device "$DEVICE"
done
echo "the demo supernet: $(pwd)/$stage/supernet.safetensors"
