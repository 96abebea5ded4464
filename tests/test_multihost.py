"""Multi-process training on one machine: 2 processes x 2 CPU devices over gloo."""

import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices_per_process: int):
  return subprocess_env(
      XLA_FLAGS=f'--xla_force_host_platform_device_count={devices_per_process}',
      PYTHONPATH=f'{REPO}:{REPO / "tests"}')


def _run_all(commands, devices_per_process, timeout=300):
  procs = [subprocess.Popen(c, cwd=REPO, env=_env(devices_per_process), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands]
  outputs = [p.communicate(timeout=timeout)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-4000:]
  return outputs


@pytest.mark.slow
def test_2_processes_x_2_devices_equal_1_process_x_4_devices(tmp_path):
  script = str(REPO / 'tests' / 'train_steps_child.py')
  port = _free_port()
  _run_all([[sys.executable, script, str(tmp_path / 'two.npz'), '2', str(i), str(port)]
            for i in range(2)], devices_per_process=2)
  _run_all([[sys.executable, script, str(tmp_path / 'one.npz'), '1', '0', '0']],
           devices_per_process=4)
  two, one = np.load(tmp_path / 'two.npz'), np.load(tmp_path / 'one.npz')
  assert (int(two['process_count']), int(two['device_count'])) == (2, 4)
  assert (int(one['process_count']), int(one['device_count'])) == (1, 4)
  for key in sorted(set(one.files) - {'process_count', 'device_count'}):
    np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_checkpoint_of_a_2x2_run_resumes_on_1_device(tmp_path, tiny_data_dir):
  workdir = tmp_path / 'run'
  common = ['main.py', '--config=configs/tiny.py', f'--workdir={workdir}',
            f'--config.data.data_dir={tiny_data_dir}']
  port = _free_port()
  outputs = _run_all([[sys.executable, *common, f'--coordinator_address=127.0.0.1:{port}',
                       '--num_processes=2', f'--process_id={i}'] for i in range(2)],
                     devices_per_process=2)
  assert 'process 0 of 2, 2 local / 4 global devices' in outputs[0]
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2', '4']
  # Only process 0 writes logs and reports.
  assert len(list(workdir.glob('events.out.tfevents.*'))) == 1
  [out] = _run_all([[sys.executable, *common, '--config.num_train_steps=6']],
                   devices_per_process=1)
  assert 'Resuming training from step 4' in out
  assert (workdir / 'checkpoints' / '6').is_dir()


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_at_the_same_step(tmp_path, tiny_data_dir):
  workdir = tmp_path / 'run'
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={workdir}',
       f'--config.data.data_dir={tiny_data_dir}', '--config.num_train_steps=5000',
       '--config.checkpoint_every_steps=1000', '--config.eval_every_steps=5000',
       '--config.log_every_steps=50', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}'], cwd=REPO, env=_env(2), text=True,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
  # Wait until training runs (the first log line of process 0), then preempt process 1 only.
  lines = []
  for line in procs[0].stdout:
    lines.append(line)
    if 'step 50/5000' in line:
      break
  procs[1].send_signal(signal.SIGTERM)
  outputs = [''.join(lines) + procs[0].communicate(timeout=120)[0],
             procs[1].communicate(timeout=120)[0]]
  assert [p.returncode for p in procs] == [0, 0], outputs[1][-3000:]
  stopped = [int(re.search(r'Stopped by .* at step (\d+)', o).group(1)) for o in outputs]
  assert stopped[0] == stopped[1] < 5000
  assert (workdir / 'checkpoints' / str(stopped[0])).is_dir()
