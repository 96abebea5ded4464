#!/usr/bin/env bash
# Train unet_jax on one host with one or more NVIDIA GPUs.
#
#   launch/gpu_host.sh --config=configs/carla.py --workdir=/data/runs/NAME \
#       [--gpus=0,1,2,3] [--setup] [--cuda=cuda12] [--dry-run] [-- --config.x=y ...]
#
# One process drives every visible GPU: the batch is split over them by the
# jitted step (config.batch_size is global and must divide by the GPU count).
# --setup first builds .venv with the CUDA build of jax. Rerunning the same
# command resumes from the workdir's newest checkpoint; SIGTERM (Ctrl-C is
# SIGINT: use `kill -TERM`) checkpoints and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/common.sh

CONFIG= WORKDIR= GPUS= SETUP=0 CUDA=cuda12 EXTRA=()
PYTHON=${PYTHON:-.venv/bin/python}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --gpus=*) GPUS=${1#*=} ;;
    --cuda=*) CUDA=${1#*=} ;;
    --setup) SETUP=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --help|-h) sed -n '2,12p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
require config "$CONFIG"; require workdir "$WORKDIR"

if [[ "$SETUP" == 1 ]]; then
  run python3 -m venv .venv
  run .venv/bin/pip install -q -r requirements.txt "jax[$CUDA]==0.10.2"
fi
ENV=(env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9)
[[ -n "$GPUS" ]] && ENV+=(CUDA_VISIBLE_DEVICES="$GPUS")
run "${ENV[@]}" "$PYTHON" main.py --config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}"
