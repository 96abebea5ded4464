"""Every run config loads, says how to run it, and builds its model at its input size."""

import importlib

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from conftest import REPO
from unet_jax import models, stages, views

RUN_CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                     if p.stem not in ('__init__', 'default'))


def test_every_run_config_is_listed():
  assert {'carla', 'carla_quick', 'carla_plus_w16', 'carla_plus_w16_192x256', 'carla_plus_w32',
          'carla_plus_w32_staged', 'carla_plus_w32_lovasz', 'own_data', 'synthetic',
          'tiny'} <= set(RUN_CONFIGS)


def test_no_config_starts_from_a_temporary_folder():
  for path in (REPO / 'configs').glob('*.py'):
    assert '/tmp/' not in path.read_text().split('"""', 2)[-1], path  # code, not docs


@pytest.mark.parametrize('name', RUN_CONFIGS)
def test_config_builds_and_documents_its_command(name):
  module = importlib.import_module(f'configs.{name}')
  assert f'--config=configs/{name}.py' in module.__doc__  # how to run it
  config = module.get_config()
  assert isinstance(config, ml_collections.ConfigDict)
  for _, stage in stages.stage_configs(config):  # the config itself when it has no stages
    model = models.create_model(stage.model, stage.data.num_classes)
    height, width = stage.data.image_size
    images = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x), images)
    logits = shapes[0]
    assert logits.shape == (1, height, width, stage.data.num_classes)
    # Its training and evaluation scales fit its frames (raises ConfigError otherwise).
    assert len(views.models_at_scales(stage, stage.train_input_scales, 'train')) == len(
        stage.train_input_scales)
    assert len(views.eval_models(stage)) == len(stage.eval_input_scales)
