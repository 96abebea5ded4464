"""Every run config loads, says how to run it, and builds its model at its input size."""

import importlib

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from conftest import REPO
from unet_jax import models, views

RUN_CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                     if p.stem not in ('__init__', 'default'))


def test_every_run_config_is_listed():
  assert {'carla', 'carla_plus', 'carla_plus_wide', 'carla_plus_large', 'synthetic',
          'tiny'} <= set(RUN_CONFIGS)


@pytest.mark.parametrize('name', RUN_CONFIGS)
def test_config_builds_and_documents_its_command(name):
  module = importlib.import_module(f'configs.{name}')
  assert f'--config=configs/{name}.py' in module.__doc__  # how to run it
  config = module.get_config()
  assert isinstance(config, ml_collections.ConfigDict)
  model = models.create_model(config.model, config.data.num_classes)
  height, width = config.data.image_size
  images = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x), images)
  logits = shapes[0]
  assert logits.shape == (1, height, width, config.data.num_classes)
  # Its training and evaluation scales fit its frames (raises ConfigError otherwise).
  assert len(views.models_at_scales(config, config.train_input_scales, 'train')) == len(
      config.train_input_scales)
  assert len(views.eval_models(config)) == len(config.eval_input_scales)
