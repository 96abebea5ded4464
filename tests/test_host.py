"""Host settings the code chooses: how many XLA devices the CPU is split into."""

import subprocess
import sys

import pytest

from configs import tiny
from conftest import REPO, subprocess_env
from unet_jax import host
from unet_jax.errors import ConfigError


def _config(cpu_devices=0, batch_size=8, eval_batch_size=8):
  config = tiny.get_config()
  config.update(cpu_devices=cpu_devices, batch_size=batch_size, eval_batch_size=eval_batch_size)
  return config


def test_cpu_device_count_rules():
  assert host.cpu_device_count(_config(cpu_devices=3), cores=16) == 3  # explicit wins
  assert host.cpu_device_count(_config(), cores=1) == 1
  assert host.cpu_device_count(_config(), cores=2) == 2
  assert host.cpu_device_count(_config(), cores=64) == host.MAX_AUTO_CPU_DEVICES
  # Auto never picks a count that would not divide both batch sizes.
  assert host.cpu_device_count(_config(batch_size=5), cores=2) == 1
  assert host.cpu_device_count(_config(eval_batch_size=9), cores=2) == 1
  with pytest.raises(ConfigError, match='cpu_devices must be >= 0'):
    host.cpu_device_count(_config(cpu_devices=-1))


def _train_log(tmp_path, data_dir, *args, **env):
  result = subprocess.run(
      [sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={tmp_path}',
       f'--config.data.data_dir={data_dir}', '--config.num_train_steps=2', *args],
      cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True, check=True)
  return result.stderr


@pytest.mark.slow
def test_training_splits_the_cpu_as_configured(tmp_path, tiny_data_dir):
  log = _train_log(tmp_path / 'a', tiny_data_dir, '--config.cpu_devices=2')
  assert 'CPU devices: 2 (config.cpu_devices=2' in log
  assert 'local devices: [CpuDevice(id=0), CpuDevice(id=1)]' in log
  assert (tmp_path / 'a' / 'eval_results.json').exists()
  # A device count set in XLA_FLAGS (as the multi-process tests do) is left alone.
  log = _train_log(tmp_path / 'b', tiny_data_dir, '--config.cpu_devices=2',
                   XLA_FLAGS='--xla_force_host_platform_device_count=1')
  assert 'CPU devices: left to XLA_FLAGS' in log
  assert 'local devices: [CpuDevice(id=0)]' in log
