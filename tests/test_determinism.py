"""Same config and seed, two separate processes: bitwise the same parameters and metrics."""

import json
import subprocess
import sys

import jax
import pytest

from conftest import REPO, assert_trees_bitwise_equal, restore_checkpoint, subprocess_env


def _train(workdir, data_dir):
  subprocess.run([sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={workdir}',
                  f'--config.data.data_dir={data_dir}', '--config.num_train_steps=12',
                  '--config.data.augment.hflip=True'], cwd=REPO, env=subprocess_env(), check=True,
                 capture_output=True)
  return (restore_checkpoint(workdir, 12),
          json.loads((workdir / 'eval_results.json').read_text()))


@pytest.mark.slow
def test_two_processes_same_seed_bitwise_identical(tmp_path, tiny_data_dir):
  state_a, metrics_a = _train(tmp_path / 'a', tiny_data_dir)
  state_b, metrics_b = _train(tmp_path / 'b', tiny_data_dir)
  assert len(jax.tree.leaves(state_a)) > 10  # params, optimizer and batch-norm state
  assert_trees_bitwise_equal(state_a, state_b)
  assert json.dumps(metrics_a) == json.dumps(metrics_b)  # NaN-safe exact comparison
