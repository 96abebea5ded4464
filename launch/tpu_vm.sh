#!/usr/bin/env bash
# Train unet_jax on a Cloud TPU VM or pod slice.
#
#   launch/tpu_vm.sh ACTION --project=P --zone=Z --name=N --accelerator=v4-32 \
#       --config=configs/carla.py --workdir=gs://BUCKET/runs/NAME [options] [-- --config.x=y ...]
#
# ACTION: create | setup | train | logs | stop | delete
#         run: create + setup + train, then watch; a preempted (spot) VM is
#              deleted, recreated and restarted into the same workdir, where
#              training resumes from its newest checkpoint. Ends when the run
#              has written WORKDIR/eval_results.json.
# Options:
#   --version=tpu-ubuntu2204-base   TPU software version
#   --spot                          use spot (preemptible) capacity
#   --data_dir=gs://BUCKET/data     overrides config.data.data_dir
#   --poll_seconds=300              run: how often to check the VM
#   --dry-run                       print every command, run none
# Training runs on every worker (--worker=all); JAX finds the pod's hosts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/common.sh

ACTION=${1:-}; shift || true
PROJECT= ZONE= NAME= ACCEL= CONFIG= WORKDIR= DATA_DIR= SPOT=0
VERSION=tpu-ubuntu2204-base POLL=300 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --project=*) PROJECT=${1#*=} ;;
    --zone=*) ZONE=${1#*=} ;;
    --name=*) NAME=${1#*=} ;;
    --accelerator=*) ACCEL=${1#*=} ;;
    --version=*) VERSION=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --data_dir=*) DATA_DIR=${1#*=} ;;
    --poll_seconds=*) POLL=${1#*=} ;;
    --spot) SPOT=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --help|-h) sed -n '2,22p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
require project "$PROJECT"; require zone "$ZONE"; require name "$NAME"

TPU=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE" --project="$PROJECT")

create() {
  require accelerator "$ACCEL"
  local spot=(); [[ "$SPOT" == 1 ]] && spot=(--spot)
  run "${TPU[@]}" create "$NAME" "${WHERE[@]}" --accelerator-type="$ACCEL" \
      --version="$VERSION" "${spot[@]}"
}

setup() {
  run "${TPU[@]}" scp --recurse --worker=all "${WHERE[@]}" \
      main.py requirements.txt unet_jax configs launch "$NAME":~/unet_jax/
  run "${TPU[@]}" ssh "$NAME" --worker=all "${WHERE[@]}" --command \
      "cd ~/unet_jax && python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt 'jax[tpu]==0.10.2'"
}

train() {
  require config "$CONFIG"; require workdir "$WORKDIR"
  local args=(--config="$CONFIG" --workdir="$WORKDIR")
  [[ -n "$DATA_DIR" ]] && args+=(--config.data.data_dir="$DATA_DIR")
  args+=("${EXTRA[@]}")
  local cmd; cmd="cd ~/unet_jax && nohup .venv/bin/python main.py$(printf ' %q' "${args[@]}") >> ~/train.log 2>&1 &"
  run "${TPU[@]}" ssh "$NAME" --worker=all "${WHERE[@]}" --command "$cmd"
}

logs() { run "${TPU[@]}" ssh "$NAME" --worker=0 "${WHERE[@]}" --command "tail -n 100 -f ~/train.log"; }
# SIGTERM: every worker checkpoints at the next step and exits 0.
stop() { run "${TPU[@]}" ssh "$NAME" --worker=all "${WHERE[@]}" --command "pkill -TERM -f main.py || true"; }
delete() { run "${TPU[@]}" delete "$NAME" "${WHERE[@]}" --quiet; }

state() {
  if [[ "$DRY_RUN" == 1 ]]; then echo READY; return; fi
  "${TPU[@]}" describe "$NAME" "${WHERE[@]}" --format='value(state)' 2>/dev/null || echo MISSING
}

finished() {
  run gcloud storage ls "$WORKDIR/eval_results.json" >/dev/null 2>&1
}

watch() {
  require workdir "$WORKDIR"
  while true; do
    if [[ "$DRY_RUN" == 1 ]]; then echo "+ (every ${POLL}s) check the VM state and $WORKDIR/eval_results.json"; return; fi
    if finished; then echo "training finished: $WORKDIR/eval_results.json"; return; fi
    case "$(state)" in
      PREEMPTED|TERMINATED|MISSING)
        echo "TPU VM $NAME is gone or preempted: recreating it and resuming from $WORKDIR"
        delete || true; create; setup; train ;;
    esac
    sleep "$POLL"
  done
}

case "$ACTION" in
  create) create ;;
  setup) setup ;;
  train) train ;;
  logs) logs ;;
  stop) stop ;;
  delete) delete ;;
  run) create; setup; train; watch ;;
  *) die "ACTION must be create, setup, train, logs, stop, delete or run (got '$ACTION')" ;;
esac
