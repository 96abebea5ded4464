"""Sweeps: aggregation math, and the runner on a tiny sweep (fail, interrupt, resume)."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, subprocess_env
from unet_jax import sweep_results


def _fake_run(root, variant, seed, final, best, acc, road):
  d = root / variant / f'seed_{seed}'
  d.mkdir(parents=True)
  (d / 'eval_results.json').write_text(json.dumps(
      {'mean_iou': final, 'pixel_accuracy': acc, 'iou/Road': road, 'iou/Pole': math.nan}))
  (d / 'best.json').write_text(json.dumps({'step': 10, 'mean_iou': best}))


def test_aggregation_matches_hand_computed_values(tmp_path):
  spec = {'config': 'x.py', 'seeds': (0, 1, 2),
          'variants': {'a': {}, 'b': {}, 'c': {}, 'd': {}, 'e': {}, 'f': {}}}
  _fake_run(tmp_path, 'a', 0, 0.50, 0.55, 0.90, 0.8)
  _fake_run(tmp_path, 'a', 1, 0.60, 0.61, 0.92, 0.9)
  _fake_run(tmp_path, 'a', 2, 0.70, 0.72, 0.94, 1.0)
  _fake_run(tmp_path, 'b', 0, 0.40, 0.45, 0.80, 0.5)  # seeds 1 and 2 did not finish
  for seed, final in enumerate((0.3, 0.4, 0.5)):
    _fake_run(tmp_path, 'd', seed, final, final, 0.9, 0.9)
  for seed, final in enumerate((0.58, 0.62, 0.66)):
    _fake_run(tmp_path, 'e', seed, final, final, 0.9, 0.9)
  for seed, final in enumerate((0.10, 0.12, 0.11)):
    _fake_run(tmp_path, 'f', seed, final, final, 0.9, 0.9)
  rows = {r['variant']: r for r in sweep_results.aggregate(str(tmp_path), spec)}
  a, b, c = rows['a'], rows['b'], rows['c']
  assert a['seeds_finished'] == 3 and a['final_mean_iou_mean'] == pytest.approx(0.6)
  # sample std of 0.5, 0.6, 0.7 = sqrt((0.01 + 0 + 0.01) / 2) = 0.1
  assert a['final_mean_iou_std'] == pytest.approx(0.1)
  assert a['best_mean_iou_mean'] == pytest.approx((0.55 + 0.61 + 0.72) / 3)
  assert a['final_pixel_accuracy_std'] == pytest.approx(0.02)
  assert a['per_class']['Road'] == pytest.approx(0.9) and math.isnan(a['per_class']['Pole'])
  assert b['seeds_finished'] == 1 and b['final_mean_iou_mean'] == pytest.approx(0.4)
  assert math.isnan(b['final_mean_iou_std'])
  assert c['seeds_finished'] == 0 and math.isnan(c['final_mean_iou_mean'])
  # d vs baseline a: 0.4 - 0.6 = -0.2; se = sqrt(0.1^2/3 + 0.1^2/3) = 0.08165; t = -2.449
  # Equal variances and n: Welch's df = 2(n-1) = 4, two-sided p(|T4| > 2.449) = 0.0705.
  d, e, f = rows['d'], rows['e'], rows['f']
  assert d['diff'] == pytest.approx(-0.2) and d['diff_se'] == pytest.approx(0.0816497, abs=1e-6)
  assert d['diff_t'] == pytest.approx(-2.4494897, abs=1e-6)
  assert d['diff_p'] == pytest.approx(0.0704840, abs=1e-6)
  # e: 0.62 - 0.6 = 0.02; std 0.04; se = sqrt(0.01/3 + 0.0016/3) = 0.0621825; t = 0.3216
  assert e['diff_t'] == pytest.approx(0.3216338, abs=1e-6)
  # f: 0.11 - 0.6 = -0.49; se = sqrt(0.0001/3 + 0.01/3) = 0.058023; t = -8.445
  assert f['diff_t'] == pytest.approx(-8.4449293, abs=1e-6) and f['diff_p'] < 0.05
  assert math.isnan(b['diff_t']) and math.isnan(b['diff_p'])  # one seed: no spread
  md = (tmp_path / 'results.md').read_text()
  assert '| a | 3/3 | 0.6000 ± 0.1000 |' in md and '| b | 1/3 | 0.4000 ± - |' in md
  assert '| -0.2000 ± 0.0816 (t=-2.4, p=0.07) |' in md  # not bold: within noise
  # Pixel accuracy of d (0.9, 0.9, 0.9) vs a (0.90, 0.92, 0.94): -0.02, se = 0.02/sqrt(3).
  assert d['acc_diff'] == pytest.approx(-0.02) and d['acc_diff_se'] == pytest.approx(0.0115470)
  assert '| +0.0200 ± 0.0622 (t=+0.3, p=0.77) |' in md
  assert '| **-0.4900 ± 0.0580 (t=-8.4, p=0.01)** |' in md
  assert (tmp_path / 'results.csv').read_text().startswith('variant,seeds_finished,seeds,')
  assert 'Road' in (tmp_path / 'per_class.csv').read_text().splitlines()[0]
  assert (tmp_path / 'results.png').stat().st_size > 1000


SWEEP = '''
def get_sweep():
  return dict(config='configs/tiny.py',
              overrides={{'data.data_dir': {data!r}, 'num_train_steps': 40,
                          'checkpoint_every_steps': 5, 'eval_every_steps': 20}},
              seeds=(0, 1),
              variants={{'bn': {{}}, 'broken': {{'model.norm': 'bogus'}}, 'no_bn': {{'model.norm': 'none'}}}})
'''


def _runs_with_checkpoints(workdir):
  """Run folders holding at least one complete (renamed, all-digit) checkpoint."""
  return {p.parent.parent for p in workdir.glob('*/seed_*/checkpoints/*') if p.name.isdigit()}


def _start_runner(sweep_file, workdir):
  return subprocess.Popen(
      [sys.executable, '-m', 'unet_jax.sweep', f'--sweep={sweep_file}', f'--workdir={workdir}',
       '--parallel=2'], cwd=REPO, env=subprocess_env(), text=True, start_new_session=True,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_runner_survives_failures_and_interruptions(tmp_path, tiny_data_dir):
  sweep_file = tmp_path / 'tiny_sweep.py'
  sweep_file.write_text(SWEEP.format(data=str(tiny_data_dir)))
  workdir = tmp_path / 'sweep'
  printed = subprocess.run([sys.executable, '-m', 'unet_jax.sweep', f'--sweep={sweep_file}',
                            f'--workdir={workdir}', '--print_commands'], cwd=REPO,
                           env=subprocess_env(), capture_output=True, text=True, check=True)
  assert len(printed.stdout.splitlines()) == 6
  assert '--config.model.norm=none --config.seed=1' in printed.stdout

  # Interrupt the whole sweep (runner and its runs) once some run has a checkpoint.
  runner = _start_runner(sweep_file, workdir)
  deadline = time.time() + 240
  while not _runs_with_checkpoints(workdir) and time.time() < deadline:
    time.sleep(0.05)
  os.killpg(runner.pid, signal.SIGKILL)
  runner.wait()
  interrupted = [d for d in _runs_with_checkpoints(workdir)
                 if not (d / 'eval_results.json').exists()]
  assert interrupted, 'the kill should leave at least one unfinished run with a checkpoint'

  runner = _start_runner(sweep_file, workdir)
  out, _ = runner.communicate(timeout=600)
  assert runner.returncode == 1, out  # the broken variant fails, the others finish
  assert '2 run(s) failed: broken/seed_0, broken/seed_1' in out
  for variant in ('bn', 'no_bn'):
    for seed in (0, 1):
      assert (workdir / variant / f'seed_{seed}' / 'eval_results.json').exists()
  assert "model.norm must be one of" in (workdir / 'broken' / 'seed_0' / 'log.txt').read_text()
  assert any('Resuming training from step' in (d / 'log.txt').read_text() for d in interrupted)
  assert '| bn | 2/2 |' in out and '| broken | 0/2 | - | - | - |' in out

  # A third call finds everything that can finish finished and only retries the failures.
  runner = _start_runner(sweep_file, workdir)
  out, _ = runner.communicate(timeout=600)
  assert '6 runs, 4 finished, 2 to run' in out


@pytest.mark.slow
def test_runs_go_through_a_launch_script(tmp_path, tiny_data_dir):
  """--launcher: each run becomes `SCRIPT --config --workdir -- overrides` (dry run here)."""
  sweep_file = tmp_path / 'tiny_sweep.py'
  sweep_file.write_text(SWEEP.format(data=str(tiny_data_dir)))
  workdir = tmp_path / 'sweep'
  common = [sys.executable, '-m', 'unet_jax.sweep', f'--sweep={sweep_file}',
            f'--workdir={workdir}', '--launcher=launch/gpu_host.sh --gpus=0 --dry-run']
  printed = subprocess.run(common + ['--print_commands'], cwd=REPO, env=subprocess_env(),
                           capture_output=True, text=True, check=True).stdout.splitlines()
  assert len(printed) == 6
  assert printed[0].startswith(f'launch/gpu_host.sh --gpus=0 --dry-run --config=configs/tiny.py '
                               f'--workdir={workdir}/bn/seed_0 -- --config.data.data_dir=')
  subprocess.run(common, cwd=REPO, env=subprocess_env(), capture_output=True, check=True)
  # The script ran (dry) once per run, with the run's workdir and overrides passed on.
  log = (workdir / 'no_bn' / 'seed_1' / 'log.txt').read_text()
  assert 'CUDA_VISIBLE_DEVICES=0' in log and f'--workdir={workdir}/no_bn/seed_1' in log
  assert '--config.model.norm=none --config.seed=1' in log
  assert not list(workdir.glob('*/seed_*/checkpoints'))  # nothing trained in a dry run
