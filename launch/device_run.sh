#!/usr/bin/env bash
# The whole training loop on an accelerator host without TensorFlow, against the bare step.
#
#   launch/device_run.sh [--dir=.device_run] [--out=$OUT] [--subjects=LIST] [--rounds=3] \
#       [-- --config.x=y ...]
#
# Made by launch/device_run_prepare.sh, --dir holds the prepared CARLA dataset and
# wheels; they are installed into /tmp/site (nothing else is downloaded). Then:
#  1. configs/carla.py trains end to end with main.py from the prepared dataset
#     (augmentation in the train step, no tf.data), timed;
#  2. bench.run times the bare train step of the same cell (ours, and PyTorch eager and
#     torch.compile where torch is installed);
#  3. bench.end_to_end writes end_to_end.json: end-to-end img/s over the bare step's,
#     wall time, validation mIoU.
# Results (8 files at most) go to --out. A CPU dry run: PYTHON=a TensorFlow-free venv,
# and `-- --config.num_train_steps=20 ...` to shorten training.
set -uo pipefail
cd "$(dirname "$0")/.."
source launch/common.sh

DIR=.device_run OUT=${OUT:-/tmp/device_run} ROUNDS=3 EXTRA=()
SUBJECTS=ours_f32,ours_bf16,torch,torch_bf16,torch_compile,torch_compile_bf16
PYTHON=${PYTHON:-python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir=*) DIR=${1#*=} ;;
    --out=*) OUT=${1#*=} ;;
    --subjects=*) SUBJECTS=${1#*=} ;;
    --rounds=*) ROUNDS=${1#*=} ;;
    --help|-h) sed -n '2,17p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
data=$(ls -d "$DIR"/tfds/*/*/*/ 2>/dev/null | head -1)
[[ -n "$data" ]] || die "$DIR has no prepared dataset: run launch/device_run_prepare.sh first"
mkdir -p "$OUT"
run "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    "$DIR"/wheels/*.whl || die "installing the wheels of $DIR failed"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
workdir=/tmp/device_run_carla
rm -rf "$workdir"

start=$EPOCHREALTIME
run "$PYTHON" main.py --config=configs/carla.py --workdir="$workdir" \
    --config.data.source=prepared --config.data.data_dir="$data" \
    --config.data.augment.on_device=True "${EXTRA[@]}" 2>&1 | tee "$OUT/carla.log"
status=${PIPESTATUS[0]}
wall=$("$PYTHON" -c "print(round($EPOCHREALTIME - $start, 1))")
(( status == 0 )) || die "training failed (exit $status): see $OUT/carla.log"
cp "$workdir/eval_results.json" "$workdir/training_curves.png" "$OUT/" 2>/dev/null

cell=$("$PYTHON" -c "import json; c = json.load(open('$workdir/config.json'));
h, w = c['data']['image_size']; print(f\"train:{h}x{w}x{c['batch_size']}\")")
run "$PYTHON" -m bench.run --pipeline_data_dir=none --cells="$cell" --subjects="$SUBJECTS" \
    --rounds="$ROUNDS" --out="$OUT/bench_step.json" 2>&1 | tee "$OUT/bench_step.log"
run "$PYTHON" -m bench.end_to_end --workdir="$workdir" --step_results="$OUT/bench_step.json" \
    --wall_s="$wall" --out="$OUT/end_to_end.json"
