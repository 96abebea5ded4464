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


def test_main_rejects_unknown_config_keys(tmp_path):
  result = subprocess.run(
      [sys.executable, 'main.py', '--config=configs/synthetic.py', f'--workdir={tmp_path}',
       '--config.model.widthz=3'], cwd=REPO, env=subprocess_env(), capture_output=True,
      text=True, timeout=300)
  assert result.returncode != 0
  assert 'widthz' in result.stderr
