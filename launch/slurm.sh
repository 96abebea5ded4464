#!/usr/bin/env bash
# Submit multi-node GPU training to SLURM.
#
#   launch/slurm.sh --nodes=2 --gpus_per_node=8 --config=configs/carla.py \
#       --workdir=/shared/runs/NAME [--partition=P] [--time=24:00:00] [--account=A] \
#       [--dry-run] [-- --config.x=y ...]
#
# One process per node, driving all of that node's GPUs; JAX finds the other
# nodes from SLURM's environment. The job is requeued when preempted or near
# its time limit (see launch/slurm.sbatch) and resumes from the workdir, which
# must be on a filesystem every node sees (or gs://).
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/common.sh

NODES=1 GPUS=8 CONFIG= WORKDIR= PARTITION= TIME=24:00:00 ACCOUNT= EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes=*) NODES=${1#*=} ;;
    --gpus_per_node=*) GPUS=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --partition=*) PARTITION=${1#*=} ;;
    --time=*) TIME=${1#*=} ;;
    --account=*) ACCOUNT=${1#*=} ;;
    --dry-run) DRY_RUN=1 ;;
    --help|-h) sed -n '2,12p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
require config "$CONFIG"; require workdir "$WORKDIR"

# SLURM writes its log to a local path: the workdir, or ./slurm_logs for gs://.
LOG_DIR=$WORKDIR
[[ "$WORKDIR" == gs://* ]] && LOG_DIR=slurm_logs
ARGS=(--job-name=unet_jax --nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS"
      --time="$TIME" --requeue --signal=B:USR1@180 --open-mode=append
      --output="$LOG_DIR/slurm-%j.out")
[[ -n "$PARTITION" ]] && ARGS+=(--partition="$PARTITION")
[[ -n "$ACCOUNT" ]] && ARGS+=(--account="$ACCOUNT")
run mkdir -p "$LOG_DIR"
run sbatch "${ARGS[@]}" launch/slurm.sbatch --config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}"
