"""Shared fixtures: tiny configs and tiny generated datasets."""

import os
import pathlib

import ml_collections
import pytest

from configs import default

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_CARLA = REPO.parent / 'shared' / 'data' / 'carla_lab'


def tiny_config() -> ml_collections.ConfigDict:
  """A seconds-long run: 2-level U-Net, 32x48 frames, synthetic data."""
  config = default.get_config()
  config.data.source = 'synthetic'
  config.data.image_size = (32, 48)
  config.data.synthetic.update(num_clips=6, frames_per_clip=4, height=48, width=64, seed=0)
  config.data.val_fraction = 0.3
  config.model.widths = (4, 8)
  config.model.dropout = (0.0, 0.1)
  config.model.norm = 'batch'
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.prefetch_batches = 1
  return config


@pytest.fixture
def config() -> ml_collections.ConfigDict:
  return tiny_config()


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """A generated dataset in the lab layout, shared by the tests that only read it."""
  from unet_jax import synthetic
  s = tiny_config().data.synthetic
  root = tmp_path_factory.mktemp('data') / 'synthetic'
  synthetic.generate(root, num_clips=s.num_clips, frames_per_clip=s.frames_per_clip,
                     height=s.height, width=s.width, seed=s.seed)
  return root


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child Python that imports this repo."""
  env = dict(os.environ)
  env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
  env.update(extra)
  return env
