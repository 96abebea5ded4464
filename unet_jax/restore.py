"""A trained run, restored from its workdir: its config and a checkpoint's state.

Used by --mode=eval/predict/export (read-only: nothing in the workdir changes)
and by `config.init_from` (a new run starting from another run's weights).
"""

import json

import jax
import ml_collections
from absl import logging
from etils import epath

from unet_jax import checkpointing, defaults, models, optim
from unet_jax.errors import CheckpointError, ConfigError, WorkdirError
from unet_jax.train_state import TrainState, create_train_state


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run wrote to `workdir/config.json`.

  Fields added to the code since that run take their defaults from
  `unet_jax/defaults.py` (a model runs as it was trained: new fields default
  to the old behaviour), so older workdirs stay usable.
  """
  path = epath.Path(workdir) / 'config.json'
  if not path.exists():
    raise WorkdirError(f'{path} not found: --workdir must be the workdir of a training run '
                       f'(or pass --config)')
  try:
    saved = json.loads(path.read_text())
  except ValueError as e:
    raise WorkdirError(f'{path} is not valid JSON ({e}): pass --config instead') from None
  config = defaults.get_config()
  with config.unlocked():
    _merge(config, saved)
  config.data.image_size = tuple(config.data.image_size)
  config.model.widths = tuple(config.model.widths)
  config.model.width_multipliers = tuple(config.model.width_multipliers)
  config.model.dropout = tuple(config.model.dropout)
  config.stages = tuple((name, dict(overrides)) for name, overrides in config.stages)
  return config


def trained_workdir(workdir: str) -> str:
  """The workdir whose checkpoints hold the trained model: a staged run's final stage."""
  path = epath.Path(workdir) / 'config.json'
  try:
    stages = json.loads(path.read_text()).get('stages') if path.exists() else None
  except ValueError:
    return workdir  # load_config names the problem
  if not stages:
    return workdir
  name = stages[-1][0]
  final = epath.Path(workdir) / 'stages' / f'{len(stages)}-{name}'
  if not final.exists():
    raise WorkdirError(f'{workdir} is a staged run whose final stage ({name}) has not started '
                       f'yet; evaluate a finished stage with --workdir={workdir}/stages/...')
  return str(final)


def _merge(config: ml_collections.ConfigDict, saved: dict) -> None:
  for key, value in saved.items():
    if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
      _merge(config[key], value)
    else:
      config[key] = value


def restore_state(config: ml_collections.ConfigDict, workdir: str,
                  checkpoint: str = 'latest') -> tuple[TrainState, int]:
  """(train state, step) of a checkpoint: 'latest', 'best' or a step number.

  Read-only: a damaged newest checkpoint is skipped for the previous one
  ('latest') with a warning, never moved; nothing is created in `workdir`.
  """
  def target() -> TrainState:
    model = models.create_model(config.model, config.data.num_classes)
    tx, _ = optim.create_optimizer(config.optimizer, 1)
    return create_train_state(config, model, tx, jax.random.key(0))

  return checkpointing.restore_for_use(workdir, checkpoint, target, config)


def initialize_from(state: TrainState, config: ml_collections.ConfigDict) -> TrainState:
  """`state` with the parameters and batch-norm statistics of `config.init_from`'s checkpoint.

  The step, optimizer state and schedule start afresh: this starts a new run
  (a fine-tuning stage) from another run's weights, it does not resume it.
  """
  where = f'config.init_from={config.init_from!r}'
  try:
    source_dir = trained_workdir(config.init_from)
    source = load_config(source_dir)
  except WorkdirError as e:
    raise ConfigError(f'{where}: {e}') from None
  ours, theirs = checkpointing.run_record(config), checkpointing.run_record(source)
  diffs = [f'{k}: that run has {theirs[k]}, this config {v}'
           for k, v in ours.items() if k != 'optimizer' and theirs[k] != v]
  if diffs:
    raise ConfigError(f'{where} holds another model ({"; ".join(diffs)})')
  try:
    weights, step = restore_state(source, source_dir, config.init_checkpoint)
  except CheckpointError as e:
    raise ConfigError(f'{where}: {e}') from None
  logging.info('Initialised from %s, checkpoint %s (step %d)', config.init_from,
               config.init_checkpoint, step)
  return state.replace(params=weights.params, batch_stats=weights.batch_stats)
