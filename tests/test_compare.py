"""unet_jax.compare: per-class IoU of finished runs side by side."""

import json
import math
import subprocess
import sys
import pytest

from conftest import REPO, subprocess_env


def _run_dir(tmp_path, name, ious, step, mean_iou=0.5, **more):
  workdir = tmp_path / name
  workdir.mkdir()
  results = {'step': step, 'pixel_accuracy': 0.9, 'mean_iou': mean_iou,
             'mean_dice': 0.5, 'fw_iou': 0.8, 'iou/Never': math.nan, **more}
  results.update({f'iou/{k}': v for k, v in ious.items()})
  (workdir / 'eval_results.json').write_text(json.dumps(results))
  return str(workdir)


def _compare(*args):
  return subprocess.run([sys.executable, '-m', 'unet_jax.compare', *args], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_table_has_a_column_per_run_and_a_row_per_class(tmp_path):
  a = _run_dir(tmp_path, 'a', {'Road': 0.9, 'Pole': math.nan}, 100, mean_iou=0.45)
  b = _run_dir(tmp_path, 'b', {'Road': 0.95, 'Pole': 0.125}, 200, mean_iou=0.5375,
               mean_iou_truth=0.95)
  out = tmp_path / 'table.md'
  result = _compare(a, b, '--names=lab,plus', f'--out={out}')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == '| class | lab | plus |'
  assert '| Road | 0.900 | 0.950 |' in lines
  assert '| Pole | - | 0.125 |' in lines  # absent from run a's evaluation
  assert not any(line.startswith('| Never') for line in lines)  # absent from every run
  assert '| **mean IoU** | 0.4500 | 0.5375 |' in lines
  # Run a's results predate mean_iou_truth: shown as missing, not as an error.
  assert '| mean IoU over the classes in the truth | - | 0.9500 |' in lines
  assert lines[-1] == '| step evaluated | 100 | 200 |'
  assert out.read_text() == result.stdout


@pytest.mark.slow
def test_unfinished_run_and_name_mismatch_are_errors(tmp_path):
  a = _run_dir(tmp_path, 'a', {'Road': 0.9}, 100)
  result = _compare(a, str(tmp_path / 'missing'))
  assert result.returncode == 1
  assert 'missing/eval_results.json does not exist' in result.stderr
  assert 'not a finished training run' in result.stderr
  result = _compare(a, '--names=x,y')
  assert result.returncode != 0 and '--names has 2 names for 1 workdirs' in result.stderr
