"""Never lose a run: kills, SIGTERM, damaged checkpoints, NaNs and misuse."""

import logging
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import REPO, assert_trees_bitwise_equal, restore_checkpoint, subprocess_env
from unet_jax import errors, train

# A run long enough to be killed part-way: ~150 tiny steps, frequent saves.
LONG_RUN = ['--config.num_train_steps=150', '--config.checkpoint_every_steps=7',
            '--config.eval_every_steps=50', '--config.log_every_steps=10']


def _main(workdir, data_dir, *extra):
  return [sys.executable, 'main.py', '--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.data.data_dir={data_dir}', *LONG_RUN, *extra]


def _final_params(workdir, step=150):
  return restore_checkpoint(workdir, step)['params']


@pytest.fixture(scope='module')
def reference_run(tiny_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('reference')
  subprocess.run(_main(workdir, tiny_data_dir), cwd=REPO, env=subprocess_env(), check=True,
                 capture_output=True)
  return _final_params(workdir)


def _steps(workdir):
  ckpt = workdir / 'checkpoints'
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.exists() else []


def _start(workdir, data_dir):
  return subprocess.Popen(_main(workdir, data_dir), cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=120.0):
  end = time.time() + timeout
  while time.time() < end and proc.poll() is None:
    if predicate():
      return True
    time.sleep(0.001)
  return False


def test_sigkill_at_random_points_then_resume_is_bitwise_identical(
    reference_run, tiny_data_dir, tmp_path):
  rng = np.random.default_rng(0)
  workdir = tmp_path / 'killed'
  killed_at = []
  # Kill point 1: while a checkpoint save is in flight (its tmp folder exists).
  # Kill points 2-4: a random short delay after a random later checkpoint step,
  # each beyond what the previous runs had already saved.
  for kind in ('during-save', 'after-step', 'after-step', 'after-step'):
    newest = (_steps(workdir) or [0])[-1]
    after = newest + int(rng.integers(5, 30))
    proc = _start(workdir, tiny_data_dir)
    ckpt = workdir / 'checkpoints'
    if kind == 'during-save':
      hit = _wait_for(lambda: ckpt.exists() and any('tmp' in p for p in os.listdir(ckpt)), proc)
    else:
      hit = _wait_for(lambda: any(s >= after for s in _steps(workdir)), proc)
      time.sleep(rng.uniform(0, 0.3))
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if hit and alive:
      killed_at.append((kind, (_steps(workdir) or [None])[-1]))
  # At least the during-save kill and most random ones must land mid-run.
  print('killed at (kind, newest checkpoint):', killed_at)
  assert len(killed_at) >= 3, killed_at
  final = subprocess.run(_main(workdir, tiny_data_dir), cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True)
  assert final.returncode == 0, final.stderr[-3000:]
  assert 'Resuming training from step' in final.stderr
  assert_trees_bitwise_equal(_final_params(workdir), reference_run)


def test_sigterm_saves_a_checkpoint_and_exits_zero(reference_run, tiny_data_dir, tmp_path):
  workdir = tmp_path / 'preempted'
  proc = _start(workdir, tiny_data_dir)
  assert _wait_for(lambda: bool(_steps(workdir)), proc)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'Received SIGTERM' in stderr and 'Stopped by SIGTERM at step' in stderr
  stopped = int(stderr.split('Stopped by SIGTERM at step ')[1].split(';')[0])
  assert stopped < 150 and stopped in _steps(workdir)
  subprocess.run(_main(workdir, tiny_data_dir), cwd=REPO, env=subprocess_env(), check=True,
                 capture_output=True)
  assert_trees_bitwise_equal(_final_params(workdir), reference_run)


@pytest.mark.parametrize('damage', ['truncated', 'missing', 'run-record'])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(config, tmp_path, caplog, damage):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))  # checkpoints 2 and 4
  latest = workdir / 'checkpoints' / '4'
  if damage == 'truncated':
    for f in (latest / 'state').rglob('*'):
      if f.is_file():
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
  elif damage == 'missing':
    for f in list((latest / 'state').rglob('*')):
      if f.is_file() and 'metadata' not in f.name:
        f.unlink()
  else:
    (latest / 'run' / 'metadata').unlink()
  config.num_train_steps = 6
  with caplog.at_level(logging.INFO):
    summary = train.train_and_evaluate(config, str(workdir))
  assert f'Checkpoint {latest} is damaged' in caplog.text
  assert 'Resuming training from step 2' in caplog.text
  assert np.isfinite(summary['mean_iou'])
  assert len(list((workdir / 'checkpoints_damaged').iterdir())) == 1
  assert 6 in _steps(workdir)


def test_nonfinite_loss_stops_naming_the_step_and_keeps_good_checkpoints(config, tmp_path):
  config.optimizer.learning_rate = 1e30  # parameters blow up after the first update
  config.num_train_steps = 8
  config.log_every_steps = 8  # checkpoints at 2, 4, 6 come after the first bad step
  with pytest.raises(errors.DivergedError, match=r'NaN or infinite at step \d+') as e:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert 'config.nonfinite=skip' in str(e.value)
  assert 'the newest checkpoint (step 6) is intact' in str(e.value)
  steps = _steps(tmp_path / 'run')
  assert steps == [2, 4, 6]
  for step in steps:
    params = restore_checkpoint(tmp_path / 'run', step)['params']
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_nonfinite_skip_policy_skips_updates_and_finishes(config, tmp_path, caplog):
  config.optimizer.learning_rate = 1e30
  config.nonfinite = 'skip'
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert 'Skipped' in caplog.text and 'non-finite' in caplog.text


def _run_main(*args, cwd=REPO):
  return subprocess.run([sys.executable, 'main.py', *args], cwd=cwd, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('flag, message', [
    ('--config.batch_size=abc', 'batch_size'),
    ('--config.data.source=folder', 'config.data.data_dir is empty'),
])
def test_main_reports_config_mistakes_with_nonzero_exit(tmp_path, flag, message):
  result = _run_main('--config=configs/tiny.py', f'--workdir={tmp_path}', flag)
  assert result.returncode != 0
  assert message in result.stderr
  assert 'Traceback' not in result.stderr.split('error:')[-1]


def test_missing_data_dir_is_named(config, tmp_path):
  config.data.source, config.data.data_dir = 'folder', str(tmp_path / 'nope')
  with pytest.raises(errors.DataError, match='nope'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_unwritable_workdir_is_named(config, tmp_path):
  (tmp_path / 'file').write_text('not a folder')
  with pytest.raises(errors.WorkdirError, match='cannot write to --workdir=.*file/run'):
    train.train_and_evaluate(config, str(tmp_path / 'file' / 'run'))


def test_bad_input_size_fails_before_any_work(config, tmp_path):
  config.data.image_size = (33, 48)
  with pytest.raises(errors.ConfigError, match='not a multiple of 2\\*\\*depth = 2'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_incompatible_checkpoint_is_refused_and_left_intact(config, tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  before = {p: p.read_bytes() for p in (workdir / 'checkpoints').rglob('*') if p.is_file()}
  result = _run_main('--config=configs/tiny.py', f'--workdir={workdir}',
                     '--config.model.widths=(4,16)', '--config.num_train_steps=6')
  assert result.returncode != 0
  assert 'belongs to another run' in result.stderr and 'widths' in result.stderr
  after = {p: p.read_bytes() for p in (workdir / 'checkpoints').rglob('*') if p.is_file()}
  assert before == after
