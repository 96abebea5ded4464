"""Orbax checkpoints under `workdir/checkpoints`, with checks on resume.

Each checkpoint holds the train state (step, params, optimizer state,
batch-norm statistics) and a small `run` record of what shapes the state
(model, classes, image size). Batches and dropout are pure functions of
(seed, step), so the step alone fixes the position in the data stream.

Saves are atomic (Orbax writes `<step>.orbax-checkpoint-tmp*` and renames it
when complete; leftovers are removed at start) and old checkpoints are only
deleted after a newer one is complete. A checkpoint that is nevertheless
damaged (files truncated or missing) is moved to `checkpoints_damaged/` with a
warning, and the next older one is used.
"""

import json
import os
import time
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from unet_jax import models
from unet_jax.errors import CheckpointError

BEST_RECORD = 'best.json'


def run_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What decides the shapes of a checkpoint's state (not how it is computed)."""
  m = config.model
  return {
      'widths': list(models.level_widths(m)),
      'convs_per_block': m.convs_per_block,
      'norm': m.norm,
      'group_size': m.group_size,
      'upsample': m.upsample,
      'num_classes': config.data.num_classes,
      'optimizer': config.optimizer.name,
  }


def absolute(workdir: str) -> str:
  """Orbax wants absolute paths; cloud paths (gs://...) already are."""
  return workdir if '://' in workdir else os.path.abspath(workdir)


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True, cleanup_tmp_directories=True)
  return ocp.CheckpointManager(
      epath.Path(absolute(workdir)) / 'checkpoints', options=options, item_names=('state', 'run'))


def create_best_manager(workdir: str) -> ocp.CheckpointManager:
  """`workdir/checkpoints_best`: the single checkpoint with the best validation mIoU."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(epath.Path(absolute(workdir)) / 'checkpoints_best', options=options,
                               item_names=('state', 'run'))


def best_record(workdir: str) -> dict[str, Any] | None:
  """`{'step', 'mean_iou'}` of the best checkpoint so far, if any."""
  path = epath.Path(workdir) / BEST_RECORD
  return json.loads(path.read_text()) if path.exists() else None


def maybe_save_best(manager: ocp.CheckpointManager, workdir: str, step: int, mean_iou: float,
                    state: Any, config: ml_collections.ConfigDict) -> bool:
  """Saves `state` as the best checkpoint if `mean_iou` beats the record."""
  best = best_record(workdir)
  if best is not None and not mean_iou > best['mean_iou']:
    return False
  save(manager, step, state, config)
  manager.wait_until_finished()  # the record must never point at a missing save
  if jax.process_index() == 0:
    (epath.Path(workdir) / BEST_RECORD).write_text(
        json.dumps({'step': step, 'mean_iou': mean_iou}))
  return True


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         config: ml_collections.ConfigDict) -> None:
  """Starts an asynchronous save of `state` at `step` (no-op if it exists)."""
  if step in manager.all_steps():
    return
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      run=ocp.args.JsonSave(run_record(config))), force=True)


def _check_compatible(saved: dict[str, Any], config: ml_collections.ConfigDict,
                      where: str) -> None:
  # run_record() holds only lists and scalars, so it compares equal to its JSON copy.
  expected = run_record(config)
  if saved != expected:
    diffs = [f'{k}: checkpoint has {saved.get(k)}, config has {v}'
             for k, v in expected.items() if saved.get(k) != v]
    raise CheckpointError(
        f'checkpoint {where} belongs to another run ({"; ".join(diffs)}). '
        f'Refusing to resume: use a fresh --workdir, or the config that wrote it.')


def _set_aside(manager: ocp.CheckpointManager, step: int, reason: Exception) -> None:
  src = epath.Path(manager.directory) / str(step)
  dst = epath.Path(manager.directory).parent / 'checkpoints_damaged' / f'{step}-{int(time.time())}'
  logging.warning('Checkpoint %s is damaged and cannot be restored (%s: %s). Moving it to %s '
                  'and trying the previous one.', src, type(reason).__name__,
                  str(reason).splitlines()[0][:300], dst)
  if jax.process_index() == 0:
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'set aside damaged checkpoint {step}')
  manager.reload()


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   config: ml_collections.ConfigDict) -> Any | None:
  """Restores the newest good checkpoint into the structure/sharding of `target`.

  Returns None when there is none. Raises CheckpointError when the checkpoint
  was written by a run whose model or data shape differ.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    where = f'{manager.directory}/{step}'
    try:
      saved = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
    except Exception as e:  # pylint: disable=broad-except
      _set_aside(manager, step, e)
      continue
    _check_compatible(saved, config, where)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target)))['state']
    except Exception as e:  # pylint: disable=broad-except
      _set_aside(manager, step, e)
      continue
    logging.info('Restored checkpoint %s', where)
    return restored
  return None
