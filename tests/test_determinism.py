"""Same config and seed, two separate processes: bitwise the same parameters and metrics."""

import json
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from conftest import REPO, subprocess_env


def _train(workdir, data_dir):
  subprocess.run([sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={workdir}',
                  f'--config.data.data_dir={data_dir}', '--config.num_train_steps=12',
                  '--config.data.hflip=True'], cwd=REPO, env=subprocess_env(), check=True,
                 capture_output=True)
  with ocp.CheckpointManager(workdir / 'checkpoints', item_names=('state', 'run')) as mngr:
    state = mngr.restore(12, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return state['state'], json.loads((workdir / 'eval_results.json').read_text())


def test_two_processes_same_seed_bitwise_identical(tmp_path, tiny_data_dir):
  state_a, metrics_a = _train(tmp_path / 'a', tiny_data_dir)
  state_b, metrics_b = _train(tmp_path / 'b', tiny_data_dir)
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b) > 10
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert json.dumps(metrics_a) == json.dumps(metrics_b)  # NaN-safe exact comparison
