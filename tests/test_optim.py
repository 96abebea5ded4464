"""Optimizers and learning-rate schedules from `config.optimizer`."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_config
from unet_jax import errors, optim


def _opt(**overrides):
  opt = tiny_config().optimizer
  opt.update(overrides)
  return opt


def test_warmup_cosine_rises_to_the_peak_and_decays_to_the_end_factor():
  schedule = optim.create_schedule(_opt(schedule='warmup_cosine', learning_rate=1e-2,
                                        warmup_steps=10, end_lr_factor=0.1), 100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(1e-2)
  assert float(schedule(100)) == pytest.approx(1e-3)
  rates = [float(schedule(s)) for s in range(10, 101)]
  assert all(a >= b - 1e-12 for a, b in zip(rates, rates[1:]))  # no rise after the warmup


def test_piecewise_boundaries_are_fractions_of_training():
  for steps in (100, 1000):
    schedule = optim.create_schedule(_opt(schedule='piecewise', learning_rate=1.0,
                                          piecewise_boundaries=(0.5, 0.75),
                                          piecewise_scales=(0.1, 0.1)), steps)
    assert float(schedule(steps // 2 - 1)) == 1.0
    assert float(schedule(steps // 2 + 1)) == pytest.approx(0.1)
    assert float(schedule(steps - 1)) == pytest.approx(0.01)


@pytest.mark.parametrize('name', optim.OPTIMIZERS)
def test_each_optimizer_takes_a_step_down_the_gradient(name):
  tx, _ = optim.create_optimizer(_opt(name=name, learning_rate=0.1, grad_clip_norm=1.0,
                                      weight_decay=0.0 if name == 'adam' else 1e-4), 10)
  params = {'w': jnp.array([1.0, -2.0])}
  updates, _ = tx.update({'w': jnp.array([10.0, -10.0])}, tx.init(params), params)
  moved = optax.apply_updates(params, updates)['w']
  assert np.all(np.sign(np.asarray(moved - params['w'])) == [-1, 1])


def test_clipping_bounds_the_update_of_plain_sgd():
  tx, _ = optim.create_optimizer(_opt(name='sgd', momentum=0.0, learning_rate=1.0,
                                      grad_clip_norm=0.5), 10)
  params = {'w': jnp.zeros(2)}
  updates, _ = tx.update({'w': jnp.array([30.0, 40.0])}, tx.init(params), params)
  assert float(jnp.linalg.norm(updates['w'])) == pytest.approx(0.5)


@pytest.mark.parametrize('overrides, message', [
    ({'name': 'rmsprop'}, 'optimizer.name must be one of'),
    ({'schedule': 'linear'}, 'optimizer.schedule must be one of'),
    ({'name': 'adam', 'weight_decay': 1e-4}, 'needs optimizer.name=adamw or sgd'),
])
def test_bad_optimizer_options_are_named(overrides, message):
  with pytest.raises(errors.ConfigError, match=message):
    optim.create_optimizer(_opt(**overrides), 10)
