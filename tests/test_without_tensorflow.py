"""main.py trains and evaluates where `import tensorflow` fails, from a dataset prepared before."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env, tiny_config
from unet_jax.data import loading

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def prepared_dir(tiny_data_dir, tmp_path_factory):
  """A tiny dataset prepared here (with TensorFlow), as one would copy it to a GPU host."""
  data = tiny_config().data
  data.source, data.data_dir = 'folder', str(tiny_data_dir)
  data.tfds_data_dir = str(tmp_path_factory.mktemp('tfds'))
  return loading.prepared_builder(data, tiny_data_dir).data_dir


def _main_without_tensorflow(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, str(REPO / 'tests' / 'without_tensorflow.py'), str(REPO / 'main.py'),
       *flags], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600,
      check=False)


def test_training_and_evaluation_run_without_tensorflow(prepared_dir, tmp_path):
  workdir = tmp_path / 'run'
  data_flags = ('--config.data.source=prepared', f'--config.data.data_dir={prepared_dir}')
  result = _main_without_tensorflow(
      '--config=configs/tiny.py', f'--workdir={workdir}', *data_flags,
      '--config.data.augment.on_device=True', '--config.data.augment.hflip=True',
      '--config.data.augment.scale_range=(1.0,1.25)', '--config.data.augment.brightness=0.1')
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr.rstrip().endswith('tensorflow imported: False')
  summary = json.loads((workdir / 'eval_results.json').read_text())
  assert summary['step'] == 4 and 0.0 <= summary['mean_iou'] <= 1.0
  assert list(workdir.glob('events.out.tfevents.*'))
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2', '4']

  scored = _main_without_tensorflow('--mode=eval', f'--workdir={workdir}',
                                    f'--output_dir={tmp_path / "eval"}')
  assert scored.returncode == 0, scored.stderr[-3000:]
  assert scored.stderr.rstrip().endswith('tensorflow imported: False')
  assert (json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['mean_iou']
          == pytest.approx(summary['mean_iou'], abs=1e-6))


def test_tf_data_augmentation_without_tensorflow_is_one_clear_error(prepared_dir, tmp_path):
  result = _main_without_tensorflow(
      '--config=configs/tiny.py', f'--workdir={tmp_path / "run"}',
      '--config.data.source=prepared', f'--config.data.data_dir={prepared_dir}')
  assert result.returncode == 1
  assert 'error: config.data.augment.on_device=False draws training batches with tf.data' in (
      result.stderr)
  assert not (tmp_path / 'run').exists()  # a refused fresh run leaves no workdir


def test_a_folder_that_is_no_prepared_dataset_is_named(tiny_data_dir, tmp_path):
  result = _main_without_tensorflow(
      '--config=configs/tiny.py', f'--workdir={tmp_path / "run"}',
      '--config.data.source=prepared', f'--config.data.data_dir={tiny_data_dir}',
      '--config.data.augment.on_device=True')
  assert result.returncode == 1
  assert f'error: config.data.data_dir={tiny_data_dir} is not a prepared dataset' in (
      result.stderr)
