#!/usr/bin/env bash
# The from-scratch demo run (issue 16) on a lent GPU machine, as one prepared command.
#
# The device tool's nvidia-h200 has python3 with a CUDA torch, typer, rich, safetensors, numpy,
# scipy, onnx and onnxruntime, but no internet and no Debian Fashion-MNIST, so the IDX files travel:
#
#   here, once:   mkdir -p gpu-data && cp /usr/share/datasets/fashion-mnist/*.gz gpu-data/
#                 echo /gpu-data/ >> .git/info/exclude
#   device call:  command "bash scripts/gpu_issue16.sh", carry ["gpu-data"], timeout_s 600
#
# It trains `fmnist-scratch` in runs/gpu-scratch, then the 8 corners alone (bench/alone.py) with
# the time left, and puts the results in $OUT: supernet.safetensors when the run finished, and
# results.tgz (logs, config, report, alone results). runs/ is ignored by git, so it stays on the
# machine between calls while it is warm: a call that runs out of time resumes there on the next.
# A fresh machine starts over. Try it here on a CPU in a minute:
#
#   OUT=/tmp/gpu-out DEVICE=cpu SCHEDULE=quick-scratch DATA_DIR=/usr/share/datasets/fashion-mnist \
#     ALONE_ARGS="--epochs 1 --images-per-epoch 256 --corners d2-e3-k3" bash scripts/gpu_issue16.sh
set -uo pipefail

OUT=${OUT:-runs/gpu-out}
DEVICE=${DEVICE:-cuda}
SCHEDULE=${SCHEDULE:-fmnist-scratch}
DATA_DIR=${DATA_DIR:-gpu-data}
ALONE_ARGS=${ALONE_ARGS:---corners all}
BUDGET_S=${BUDGET_S:-560}  # this call's seconds; keep it under the device tool's timeout_s
RUN=runs/gpu-${SCHEDULE}
ALONE=runs/gpu-alone
mkdir -p "$OUT" "$RUN" "$ALONE"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
started=$SECONDS
seconds_left() { echo $((BUDGET_S - (SECONDS - started))); }

# Record what ran where; stop at once when the GPU asked for is not there.
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true; } > "$RUN/machine.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$RUN/machine.txt" 2>&1
if [ "$DEVICE" != cpu ] && ! python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device here: $(tail -1 "$RUN/machine.txt")"; exit 2
fi

# Training: re-running the same command resumes from the run folder's last checkpoint.
timeout "$(seconds_left)" python3 -m ofa_edge.cli train --space mbv3-fmnist --data fashion-mnist \
    --data-dir "$DATA_DIR" --schedule "$SCHEDULE" --device "$DEVICE" --threads 8 --out "$RUN" \
    >> "$RUN/train.log" 2>&1
echo "train exit $? after $((SECONDS - started)) s" | tee -a "$RUN/train.log"

# Trained-alone corners, only once the supernet is done (each corner resumes in its own folder).
if [ -f "$RUN/supernet.safetensors" ] && [ "$(seconds_left)" -gt 30 ]; then
    # shellcheck disable=SC2086  # ALONE_ARGS is a list of arguments on purpose
    timeout "$(seconds_left)" python3 bench/alone.py --device "$DEVICE" --threads 8 --data-dir "$DATA_DIR" \
        --out "$ALONE" $ALONE_ARGS >> "$ALONE/alone.log" 2>&1
    echo "alone exit $? after $((SECONDS - started)) s" | tee -a "$ALONE/alone.log"
fi

# At most 8 files come back from $OUT: the weights, and every small result in one archive.
[ -f "$RUN/supernet.safetensors" ] && cp "$RUN/supernet.safetensors" "$OUT/"
tar czf "$OUT/results.tgz" --exclude='*.safetensors' "$RUN" "$ALONE"
tail -5 "$RUN/train.log"
