"""Data parallelism: the step is the same on 1 and on 8 devices."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env


def _run(device_count: int, out):
  env = subprocess_env(
      XLA_FLAGS=f'--xla_force_host_platform_device_count={device_count}',
      PYTHONPATH=f'{REPO}:{REPO / "tests"}')
  subprocess.run([sys.executable, str(REPO / 'tests' / 'train_steps_child.py'), str(out),
                  '1', '0', '0'], env=env, check=True, cwd=REPO)
  return np.load(out)


@pytest.mark.slow
def test_train_steps_on_8_devices_equal_1_device(tmp_path):
  one = _run(1, tmp_path / 'one.npz')
  eight = _run(8, tmp_path / 'eight.npz')
  assert int(one['device_count']) == 1 and int(eight['device_count']) == 8
  assert set(one.files) == set(eight.files)
  assert any('batch_stats' in k for k in one.files)  # cross-device batch norm is covered
  for key in sorted(set(one.files) - {'device_count', 'process_count'}):
    np.testing.assert_allclose(eight[key], one[key], rtol=2e-5, atol=2e-6, err_msg=key)
