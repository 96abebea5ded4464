"""End to end: train, write events and checkpoints, resume, refuse bad resumes."""

import json
import logging
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, assert_trees_bitwise_equal, restore_checkpoint, subprocess_env
from unet_jax import checkpointing, errors, models, optim, train


def test_tiny_run_writes_events_checkpoints_and_resumes(config, tmp_path, caplog, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a relative --workdir, as users type it
  workdir = tmp_path / 'run'
  summary = train.train_and_evaluate(config, 'run')
  assert 0.0 <= summary['mean_iou'] <= 1.0 and np.isfinite(summary['loss'])
  assert list(workdir.glob('events.out.tfevents.*'))
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [2, 4]
  assert json.loads((workdir / 'eval_results.json').read_text())['step'] == 4
  assert json.loads((workdir / 'config.json').read_text())['model']['width_multipliers'] == [1, 2]

  config.num_train_steps = 6
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, 'run')
  assert 'Resuming training from step 4' in caplog.text
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [2, 4, 6]

  # The resumed run ends exactly where an uninterrupted 6-step run ends.
  straight = tmp_path / 'straight'
  train.train_and_evaluate(config, str(straight))
  assert_trees_bitwise_equal(restore_checkpoint(workdir, 6)['params'],
                             restore_checkpoint(straight, 6)['params'])


def test_checkpoint_round_trip_and_incompatible_config(config, tmp_path):
  model = models.create_model(config.model, config.data.num_classes)
  tx, _ = optim.create_optimizer(config.optimizer, 10)
  state = train.create_train_state(config, model, tx, jax.random.key(0))
  state = state.replace(step=7, params=jax.tree.map(lambda p: p + 1.0, state.params))
  manager = checkpointing.create_manager(str(tmp_path), config)
  checkpointing.save(manager, 7, state, config)
  manager.wait_until_finished()

  fresh = train.create_train_state(config, model, tx, jax.random.key(1))
  restored = checkpointing.restore_latest(manager, fresh, config)
  assert int(restored.step) == 7
  jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
  jax.tree.map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)

  config.data.num_classes = 5
  with pytest.raises(errors.CheckpointError, match='num_classes'):
    checkpointing.restore_latest(manager, fresh, config)


@pytest.mark.slow
def test_main_rejects_unknown_config_keys(tmp_path):
  result = subprocess.run(
      [sys.executable, 'main.py', '--config=configs/synthetic.py', f'--workdir={tmp_path}',
       '--config.model.widthz=3'], cwd=REPO, env=subprocess_env(), capture_output=True,
      text=True, timeout=300)
  assert result.returncode != 0
  assert 'widthz' in result.stderr


def test_train_input_scales_are_drawn_per_step_from_the_seed(config):
  config.train_input_scales = (1.0, 1.5, 2.0)
  draws = [train.train_scale_index(config, step) for step in range(1, 61)]
  assert draws == [train.train_scale_index(config, step) for step in range(1, 61)]
  assert set(draws) == {0, 1, 2}
  config.seed = 1
  assert draws != [train.train_scale_index(config, step) for step in range(1, 61)]
  config.train_input_scales = (2.0,)
  assert {train.train_scale_index(config, step) for step in range(1, 20)} == {0}


@pytest.mark.slow
def test_multiscale_training_resumes_exactly_and_differs_from_one_scale(config, tmp_path):
  config.train_input_scales = (1.0, 2.0)
  config.num_train_steps = 6
  straight = tmp_path / 'straight'
  train.train_and_evaluate(config, str(straight))
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.num_train_steps = 6
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  # The resumed run drew the same scale at every step as the uninterrupted one...
  assert_trees_bitwise_equal(restore_checkpoint(tmp_path / 'resumed', 6)['params'],
                             restore_checkpoint(straight, 6)['params'])
  # ...and the scales changed what was learned (steps 1-6 draw both scales).
  assert {train.train_scale_index(config, s) for s in range(1, 7)} == {0, 1}
  config.train_input_scales = ()
  train.train_and_evaluate(config, str(tmp_path / 'one_scale'))
  one = restore_checkpoint(tmp_path / 'one_scale', 6)['params']
  multi = restore_checkpoint(straight, 6)['params']
  assert max(float(np.abs(a - b).max()) for a, b in
             zip(jax.tree.leaves(one), jax.tree.leaves(multi))) > 1e-6


def test_on_device_augmentation_trains_and_resumes_exactly(config, tmp_path):
  config.data.augment.update(hflip=True, scale_range=(1.0, 1.5), brightness=0.2,
                             contrast=0.2, saturation=0.2, on_device=True)
  config.num_train_steps = 6
  train.train_and_evaluate(config, str(tmp_path / 'straight'))
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.num_train_steps = 6
  summary = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert np.isfinite(summary['loss'])
  assert_trees_bitwise_equal(restore_checkpoint(tmp_path / 'resumed', 6)['params'],
                             restore_checkpoint(tmp_path / 'straight', 6)['params'])


def test_train_input_scale_that_does_not_fit_fails_before_any_work(config, tmp_path):
  config.train_input_scales = (1.0, 1.1)  # 32x48 x 1.1: fractional pixels
  with pytest.raises(errors.ConfigError,
                     match='config.train_input_scales entry 1.1 does not fit 32x48'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()
