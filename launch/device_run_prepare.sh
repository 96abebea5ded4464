#!/usr/bin/env bash
# Prepares .device_run/ for launch/device_run.sh, here (TensorFlow and pip's registry needed):
# the CARLA frames prepared as a dataset, and the wheels an accelerator host lacks.
#
#   launch/device_run_prepare.sh [--data=../shared/data/carla_lab/320x240] \
#       [--python=3.12] [--stored_size=120,160] [--dir=.device_run]
#
# The dataset is configs/carla.py's (same split), its frames stored at --stored_size
# (a 2x2 box filter from 240x320) so that it, the wheels and the source tree fit the
# 64 MiB an accelerator host takes beside the tree; the script checks that. The
# wheels are for --python (the host's; 3.12 on the lent H200s): TFDS with array_record,
# clu and ml_collections, with their needs that such a host lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/common.sh

DATA=../shared/data/carla_lab/320x240 PY=3.12 STORED=120,160 DIR=.device_run BUDGET_MB=64
PYTHON=${PYTHON:-.venv/bin/python}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data=*) DATA=${1#*=} ;;
    --python=*) PY=${1#*=} ;;
    --stored_size=*) STORED=${1#*=} ;;
    --dir=*) DIR=${1#*=} ;;
    --help|-h) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[[ -d "$DATA" ]] || die "--data=$DATA is not a directory"

# What the lent hosts lack (device KINDS.md: jax, flax, optax, orbax, tensorboard,
# pillow, protobuf, etils, wrapt, tqdm are there), at the versions requirements.txt gets.
WHEELS=(tensorflow-datasets==4.9.10 array-record==0.8.6 immutabledict==4.3.1
        tensorflow-metadata==1.21.0 toml==0.10.2 dm-tree==0.1.10 clu==0.0.12
        ml-collections==1.1.0)
SOURCE_ONLY=(promise==2.3)  # pure Python, published without a wheel: built here

work="$DIR.partial"
rm -rf "$work" && mkdir -p "$work/wheels"
run "$PYTHON" -m unet_jax.data.prepare --config=configs/carla.py --config.data.data_dir="$DATA" \
    --config.data.stored_size="($STORED)" --config.data.tfds_data_dir="$work/tfds"
run "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$work/wheels" "${WHEELS[@]}"
run "$PYTHON" -m pip wheel -q --no-deps -w "$work/wheels" "${SOURCE_ONLY[@]}"
rm -rf "$work/tfds/downloads"
tree_kb=$(git ls-files -z | du -c --apparent-size -k --files0-from=- | tail -1 | cut -f1)
extra_kb=$(du -s --apparent-size -k "$work" | cut -f1)
total_mb=$(( (tree_kb + extra_kb) / 1024 ))
echo "source tree $((tree_kb / 1024)) MiB + $DIR $((extra_kb / 1024)) MiB = $total_mb MiB (budget $BUDGET_MB)"
(( total_mb <= BUDGET_MB )) || die "over the $BUDGET_MB MiB an accelerator host takes: lower --stored_size"
rm -rf "$DIR" && mv "$work" "$DIR"
echo "ready: $DIR (dataset $(ls -d "$DIR"/tfds/*/*/*/))"
