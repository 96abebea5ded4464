"""Never lose a run: kills, SIGTERM, damaged checkpoints, NaNs and misuse."""

import json
import logging
import os
import re
import shutil
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


@pytest.mark.slow
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


@pytest.mark.slow
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
def test_damaged_latest_checkpoint_falls_back_to_the_previous(
    config, trained_copy, tmp_path, caplog, damage):
  workdir = trained_copy  # checkpoints 2 and 4
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


def test_nonfinite_loss_stops_before_any_checkpoint_can_hold_it(config, tmp_path):
  config.optimizer.learning_rate = 1e30  # parameters blow up after the first update
  config.num_train_steps = 8
  config.log_every_steps = 8  # the check must not wait for the log step
  with pytest.raises(errors.DivergedError, match=r'NaN or infinite at step (\d+)') as e:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  first = int(re.search(r'at step (\d+)', str(e.value)).group(1))
  assert 'config.nonfinite=skip' in str(e.value)
  steps = _steps(tmp_path / 'run')
  # No checkpoint (regular, best or saved on the way out) from the first bad step on.
  assert all(s < first for s in steps), (steps, first)
  best = tmp_path / 'run' / 'checkpoints_best'
  assert all(int(p.name) < first for p in best.iterdir() if p.name.isdigit())
  if steps:
    assert f'the newest checkpoint (step {steps[-1]}) is intact' in str(e.value)
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


@pytest.mark.slow
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


def _files(workdir):
  return {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()}


@pytest.mark.slow
def test_incompatible_checkpoint_is_refused_and_left_intact(config, trained_copy, tmp_path):
  workdir = trained_copy
  before = _files(workdir)
  result = _run_main('--config=configs/tiny.py', f'--workdir={workdir}',
                     '--config.model.widths=(4,16)', '--config.num_train_steps=6')
  assert result.returncode != 0
  assert 'belongs to another run' in result.stderr and 'widths' in result.stderr
  assert result.stderr.splitlines()[-1].startswith('error: checkpoint')
  assert 'Traceback' not in result.stderr
  assert _files(workdir) == before  # config.json included


@pytest.mark.parametrize('change, error', [
    ({'model.width': 8}, errors.CheckpointError),
    ({'data.data_dir': '/nonexistent', 'data.source': 'folder'}, errors.DataError),
    ({'model.norm': '5'}, errors.ConfigError),
])
def test_a_refused_run_changes_nothing_in_the_workdir(
    config, trained_copy, tmp_path, change, error):
  workdir = trained_copy
  before = _files(workdir)
  for key, value in change.items():
    section, field = key.split('.')
    config[section][field] = value
  with pytest.raises(error):
    train.train_and_evaluate(config, str(workdir))
  assert _files(workdir) == before
  # The workdir still evaluates as the run it was.
  from unet_jax import restore
  state, step = restore.restore_state(restore.load_config(str(workdir)), str(workdir))
  assert step == 4


def test_a_refused_fresh_run_leaves_no_workdir(config, tmp_path):
  config.data.source, config.data.data_dir = 'folder', str(tmp_path / 'nope')
  with pytest.raises(errors.DataError):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_missing_config_file_is_one_line_at_once(tmp_path):
  start = time.time()
  result = _run_main('--config=configs/nope.py', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "error: cannot load --config=configs/nope.py: [Errno 2] No such file or directory: "
      "'configs/nope.py'"]
  assert time.time() - start < 5  # before TensorFlow and JAX are imported


def _damage_data_files(checkpoint):
  for f in checkpoint.rglob('*'):
    if f.is_file() and f.parent.name == 'd':
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


def test_eval_on_a_damaged_latest_checkpoint_uses_the_previous_one(
    config, trained_copy, tmp_path, capfd):
  from unet_jax import restore
  workdir = trained_copy
  _damage_data_files(workdir / 'checkpoints' / '4')
  capfd.readouterr()
  _, step = restore.restore_state(config, str(workdir), 'latest')
  assert step == 2
  assert (workdir / 'checkpoints' / '4').exists()  # read-only: left where it is
  with pytest.raises(errors.CheckpointError, match='checkpoints/4 is damaged'):
    restore.restore_state(config, str(workdir), '4')
  err = capfd.readouterr().err
  assert 'Traceback' not in err and 'Event loop is closed' not in err


def test_eval_without_checkpoints_creates_nothing(config, tmp_path):
  from unet_jax import restore
  workdir = tmp_path / 'run'
  workdir.mkdir()
  for checkpoint in ('latest', 'best'):
    with pytest.raises(errors.CheckpointError, match='no checkpoint in'):
      restore.restore_state(config, str(workdir), checkpoint)
  assert list(workdir.iterdir()) == []


def test_eval_leaves_a_save_in_flight_alone(config, trained_copy, tmp_path):
  from unet_jax import restore
  workdir = trained_copy
  in_flight = workdir / 'checkpoints' / '6.orbax-checkpoint-tmp-1234'
  in_flight.mkdir()
  _, step = restore.restore_state(config, str(workdir), 'latest')
  assert step == 4 and in_flight.exists()


def test_recovery_from_damaged_checkpoints_is_quiet_and_says_when_it_starts_over(
    config, trained_copy, tmp_path, capfd, caplog):
  workdir = trained_copy
  for step in (2, 4):
    _damage_data_files(workdir / 'checkpoints' / str(step))
  capfd.readouterr()
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, str(workdir))
  assert 'Every checkpoint in' in caplog.text and 'starting again from step 0' in caplog.text
  err = capfd.readouterr().err
  assert 'Event loop is closed' not in err and 'Traceback' not in err
  assert len(list((workdir / 'checkpoints_damaged').iterdir())) == 2


def test_a_resumed_run_keeps_one_history_row_per_step(config, trained_copy, tmp_path):
  workdir = trained_copy
  shutil.rmtree(workdir / 'checkpoints' / '4')  # as if killed after logging step 4
  train.train_and_evaluate(config, str(workdir))
  rows = [json.loads(line) for line in (workdir / 'metrics_history.jsonl').read_text().splitlines()]
  keys = [(r['step'], 'train/loss' in r) for r in rows]
  assert len(keys) == len(set(keys)) and (4, True) in keys


def test_reporting_failures_cost_no_training(config, tmp_path, monkeypatch, caplog):
  def broken_panel(*args, **kwargs):
    raise IndexError('index 11 is out of bounds for axis 0 with size 11')

  monkeypatch.setattr(train.eval_loop.visualize, 'panel', broken_panel)
  with caplog.at_level(logging.WARNING):
    summary = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert np.isfinite(summary['mean_iou'])
  assert 'Could not draw the prediction panels of step 2 (IndexError' in caplog.text
  assert _steps(tmp_path / 'run') == [2, 4]


def test_the_checkpoint_comes_before_the_evaluation_and_an_error_saves_its_step(
    config, tmp_path, monkeypatch):
  def broken_eval(*args, **kwargs):
    raise RuntimeError('evaluation crashed')

  monkeypatch.setattr(train.eval_loop, 'evaluate', broken_eval)
  config.eval_every_steps, config.checkpoint_every_steps = 2, 2
  with pytest.raises(RuntimeError, match='evaluation crashed'):
    train.train_and_evaluate(config, str(tmp_path / 'a'))
  assert _steps(tmp_path / 'a') == [2]  # saved before the evaluation ran
  config.eval_every_steps, config.checkpoint_every_steps = 3, 4
  with pytest.raises(RuntimeError, match='evaluation crashed'):
    train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert _steps(tmp_path / 'b') == [3]  # not a checkpoint step: saved on the way out


def test_a_copied_workdir_resumes_and_evaluates(config, trained_copy, tmp_path, caplog):
  from unet_jax import restore
  shutil.copytree(tmp_path / 'run', tmp_path / 'copy')
  shutil.rmtree(tmp_path / 'run')  # moved, in effect
  _, step = restore.restore_state(config, str(tmp_path / 'copy'), 'best')
  assert step in (2, 4)
  config.num_train_steps = 6
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, str(tmp_path / 'copy'))
  assert 'Resuming training from step 4' in caplog.text
  assert 'differs from the one this workdir last ran with, in: num_train_steps' in caplog.text
  assert 6 in _steps(tmp_path / 'copy')
