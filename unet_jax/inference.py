"""A trained model from a workdir: its config and the state of one of its checkpoints."""

import json

import jax
import ml_collections
from etils import epath

from configs import default
from unet_jax import checkpointing, models, optim
from unet_jax.errors import WorkdirError
from unet_jax.train_state import TrainState, create_train_state


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run wrote to `workdir/config.json`.

  Fields added to the code since that run take their defaults from
  `configs/default.py` (a model runs as it was trained: new fields default
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
  config = default.get_config()
  with config.unlocked():
    _merge(config, saved)
  config.data.image_size = tuple(config.data.image_size)
  config.model.widths = tuple(config.model.widths)
  config.model.width_multipliers = tuple(config.model.width_multipliers)
  config.model.dropout = tuple(config.model.dropout)
  return config


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
