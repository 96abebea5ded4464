"""Reference predictors that a trained model must clearly beat.

`sky_above_road_below`: every pixel above a horizon row is Sky, every pixel
below is Road, with the row fitted on the training split (the row that
maximises training pixel accuracy). Scored with the same metrics as models.

  python -m unet_jax.baselines --config=configs/synthetic.py --workdir=/tmp/unet_synthetic
"""

import json

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from unet_jax import metrics
from unet_jax.classes import CARLA
from unet_jax.data import loading


def fit_horizon(masks: np.ndarray) -> int:
  """Row h maximising the count of Sky pixels above h plus Road pixels below."""
  sky_rows = (masks == CARLA['Sky']).sum(axis=(0, 2))
  road_rows = (masks == CARLA['Road']).sum(axis=(0, 2))
  sky_above = np.concatenate([[0], np.cumsum(sky_rows)])
  road_below = np.concatenate([np.cumsum(road_rows[::-1])[::-1], [0]])
  return int(np.argmax(sky_above + road_below))


def sky_above_road_below(horizon: int, n: int, h: int, w: int) -> np.ndarray:
  pred = np.full((n, h, w), CARLA['Road'], np.int64)
  pred[:, :horizon] = CARLA['Sky']
  return pred


def score(train: loading.SplitData, evaluation: loading.SplitData,
          num_classes: int, class_names) -> dict[str, float]:
  horizon = fit_horizon(train.masks)
  labels = evaluation.masks.astype(np.int64)
  pred = sky_above_road_below(horizon, *labels.shape)
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (labels.ravel(), pred.ravel()), 1)
  return {'horizon_row': horizon, **metrics.summarize(cm, class_names)}


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line of `python -m unet_jax.baselines` (defined only when run so)."""
  flags.DEFINE_string('workdir', '', 'Workdir (only for generated synthetic data).')
  config_flags.DEFINE_config_file('config', None, 'Config whose data to score.',
                                  lock_config=True)
  flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = FLAGS.config
  data_dir = loading.resolve_data_dir(config.data, FLAGS.workdir)
  train = loading.load_split(data_dir, 'train', config.data)
  val = loading.load_split(data_dir, 'validation', config.data)
  result = score(train, val, config.data.num_classes, config.data.class_names)
  print(json.dumps({k: v for k, v in result.items() if not k.startswith('iou/')}, indent=2))


if __name__ == '__main__':
  define_flags()
  app.run(main)
