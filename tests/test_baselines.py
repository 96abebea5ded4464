"""The "sky above, road below" reference predictor."""

import numpy as np

from unet_jax import baselines
from unet_jax.classes import CARLA, CARLA_CLASS_NAMES
from unet_jax.data import loading

SKY, ROAD = CARLA['Sky'], CARLA['Road']


def _split(horizon, n=3, h=10, w=4, noise=()):
  masks = np.full((n, h, w), ROAD, np.uint8)
  masks[:, :horizon] = SKY
  for frame, row in noise:
    masks[frame, row] = CARLA['Vehicles']
  return loading.SplitData(np.zeros((n, h, w, 3), np.uint8), masks,
                           tuple(str(i) for i in range(n)))


def test_the_fitted_horizon_separates_sky_from_road():
  assert baselines.fit_horizon(_split(4).masks) == 4
  assert baselines.fit_horizon(_split(7, noise=[(0, 8)]).masks) == 7


def test_a_perfect_horizon_scores_perfect_sky_and_road():
  result = baselines.score(_split(4), _split(4), 23, CARLA_CLASS_NAMES)
  assert result['horizon_row'] == 4 and result['pixel_accuracy'] == 1.0
  assert result['mean_iou'] == 1.0  # over the classes present: Sky and Road


def test_other_classes_count_against_it():
  result = baselines.score(_split(4), _split(4, noise=[(1, 8), (2, 9)]), 23, CARLA_CLASS_NAMES)
  assert result['pixel_accuracy'] == 1 - 8 / 120
  assert result['iou/Vehicles'] == 0.0 and result['mean_iou'] < 1.0
