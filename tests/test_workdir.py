"""The workdir: its lock, whole-file writes, config record, history and storage errors."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, restore_checkpoint, subprocess_env
from unet_jax import checkpointing, errors, reports, workdir


def _hold_lock(path):
  """A child process that takes the workdir lock and sleeps (until killed)."""
  code = ('import sys, time\nfrom unet_jax import workdir\n'
          'with workdir.exclusive(sys.argv[1]):\n  print("locked", flush=True)\n'
          '  time.sleep(600)\n')
  proc = subprocess.Popen([sys.executable, '-c', code, str(path)], cwd=REPO,
                          env=subprocess_env(), stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'locked'
  return proc


@pytest.mark.slow
def test_lock_refuses_a_second_run_and_is_freed_by_kill_9(tmp_path, caplog):
  holder = _hold_lock(tmp_path)
  try:
    with pytest.raises(errors.WorkdirError, match=rf'in use by another training run .*pid '
                       rf'{holder.pid}'):
      with workdir.exclusive(str(tmp_path)):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel released the flock with the process; the file still names it.
  with caplog.at_level(logging.INFO), workdir.exclusive(str(tmp_path)):
    assert f'pid {os.getpid()}' in (tmp_path / workdir.LOCK).read_text()
  assert f'pid {holder.pid}' in caplog.text and 'taking over' in caplog.text
  assert (tmp_path / workdir.LOCK).read_text() == ''  # released cleanly: empty


@pytest.mark.slow
def test_training_on_a_locked_workdir_is_refused_and_writes_nothing(config, tmp_path):
  holder = _hold_lock(tmp_path)
  try:
    with pytest.raises(errors.WorkdirError, match='in use by another training run'):
      from unet_jax import train
      train.train_and_evaluate(config, str(tmp_path))
  finally:
    holder.kill()
    holder.wait()
  assert sorted(p.name for p in tmp_path.iterdir()) == [workdir.LOCK]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
  path = tmp_path / 'config.json'
  workdir.write_atomic(path, 'old')

  def full_disk(fd):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(os, 'fsync', full_disk)
  with pytest.raises(OSError, match='No space'):
    workdir.write_atomic(path, 'new')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['config.json']  # no temporary file left


def test_record_config_names_the_changed_fields(tmp_path, caplog):
  workdir.record_config(str(tmp_path), json.dumps({'a': 1, 'b': {'c': 2}}))
  with caplog.at_level(logging.WARNING):
    workdir.record_config(str(tmp_path), json.dumps({'a': 1, 'b': {'c': 3}}))
  assert 'differs from the one this workdir last ran with, in: b.c' in caplog.text
  assert json.loads((tmp_path / workdir.CONFIG).read_text()) == {'a': 1, 'b': {'c': 3}}


@pytest.mark.parametrize('error, cause', [
    (OSError(errno.ENOSPC, 'No space left on device'), 'No space left on device'),
    (PermissionError(errno.EACCES, 'Permission denied'), 'Permission denied'),
    (ValueError('RESOURCE_EXHAUSTED: Error writing "x" in OCDBT database: [OS error 28: No '
                'space left on device]'), 'No space left on device'),
])
def test_storage_errors_at_save_become_one_workdir_error(error, cause):
  with pytest.raises(errors.WorkdirError, match=f'saving step 7 failed: {cause}.*Earlier '
                     'checkpoints are intact'):
    with checkpointing.storage_errors_as_workdir_error('saving step 7'):
      try:
        raise error
      except Exception as e:
        raise RuntimeError('wrapped by a thread pool') from e


def test_other_errors_at_save_keep_their_type():
  with pytest.raises(KeyError):
    with checkpointing.storage_errors_as_workdir_error('saving'):
      raise KeyError('a bug')


def test_trim_history_drops_redone_steps_and_torn_lines(tmp_path):
  for step in (2, 4, 6):
    reports.append_history(str(tmp_path), step, {'train/loss': step})
  with open(tmp_path / reports.HISTORY, 'a') as f:
    f.write('{"step": 8, "train/lo')  # killed mid-write
  reports.trim_history(str(tmp_path), 4)
  assert [r['step'] for r in reports.read_history(str(tmp_path))] == [2, 4]
  assert (tmp_path / reports.HISTORY).read_text().count('\n') == 2


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists('/bin/mount'),
                    reason='mounting a small tmpfs needs root')
def test_disk_full_during_training_is_one_error_line_and_keeps_checkpoints(tiny_data_dir, tmp_path):
  mount = tmp_path / 'small'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=900k', 'tmpfs', str(mount)],
                    capture_output=True).returncode:
    pytest.skip('cannot mount a tmpfs here')
  try:
    run = [sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={mount}/run',
           f'--config.data.data_dir={tiny_data_dir}', '--config.num_train_steps=60',
           '--config.checkpoint_every_steps=5', '--config.keep_checkpoints=100',
           '--config.eval_every_steps=100']  # regular saves only: the first ones fit
    result = subprocess.run(run, cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1
    # The first write to fail may be a checkpoint's or the metric writer's: either way
    # one line says the disk is full.
    last = result.stderr.splitlines()[-1]
    assert last.startswith('error: ') and 'No space left on device' in last, last
    assert 'Traceback' not in result.stderr and len(result.stderr.splitlines()) < 120
    kept = sorted(int(p.name) for p in (mount / 'run' / 'checkpoints').iterdir()
                  if p.name.isdigit())
    assert kept and 60 not in kept
    for step in kept:  # complete and restorable
      assert restore_checkpoint(mount / 'run', step)['step'] == step
    history = reports.read_history(str(mount / 'run'))
    assert history and max(r['step'] for r in history) <= 60
  finally:
    subprocess.run(['umount', str(mount)], check=False)
