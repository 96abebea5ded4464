"""Orbax checkpoints under `workdir/checkpoints`, with a compatibility check.

Each checkpoint holds the train state (step, params, optimizer state,
batch-norm statistics) and a small `run` record of what shapes the state
(model, classes, image size). Batches are a pure function of (seed, step),
so the step alone fixes the position in the data stream.
"""

import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class IncompatibleCheckpointError(ValueError):
  """The workdir's checkpoints were written by a run of another shape."""


def run_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The parts of a config that a checkpoint's state depends on."""
  return {
      'model': config.model.to_dict(),
      'num_classes': config.data.num_classes,
      'image_size': list(config.data.image_size),
      'optimizer': config.optimizer.name,
  }


def _lists(x: Any) -> Any:
  """Tuples as lists, as they come back from JSON, so records compare equal."""
  if isinstance(x, dict):
    return {k: _lists(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_lists(v) for v in x]
  return x


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True)
  return ocp.CheckpointManager(
      epath.Path(workdir) / 'checkpoints', options=options, item_names=('state', 'run'))


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         config: ml_collections.ConfigDict) -> None:
  """Starts an (asynchronous) save of `state` at `step`."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      run=ocp.args.JsonSave(run_record(config))), force=True)


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   config: ml_collections.ConfigDict) -> Any | None:
  """Restores the newest checkpoint into the structure/sharding of `target`.

  Returns None when there is none. Raises IncompatibleCheckpointError when
  the checkpoint was written by a run whose model or data shape differ.
  """
  step = manager.latest_step()
  if step is None:
    return None
  directory = os.fspath(manager.directory)
  saved = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
  expected = _lists(run_record(config))
  if _lists(saved) != expected:
    diffs = {k: (saved.get(k), expected[k]) for k in expected if saved.get(k) != expected[k]}
    raise IncompatibleCheckpointError(
        f'checkpoint {directory}/{step} belongs to another run: '
        + '; '.join(f'{k}: checkpoint has {a}, config has {b}' for k, (a, b) in diffs.items())
        + '. Use a fresh --workdir, or the config that wrote it.')
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target)))['state']
  logging.info('Resumed from checkpoint %s/%d', directory, step)
  return restored
