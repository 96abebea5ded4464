"""The TensorFlow-free metric writer: event files that TensorFlow and TensorBoard read back."""

import io
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, subprocess_env
from unet_jax import metric_writer


def _events(logdir):
  files = sorted(logdir.glob('events.out.tfevents.*'))
  assert len(files) == 1
  return list(tf.compat.v1.train.summary_iterator(str(files[0])))


def test_scalars_and_images_read_back_with_tensorflow(tmp_path):
  panel = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
  with metric_writer.MetricWriter(tmp_path) as writer:
    writer.write_scalars(3, {'train/loss': 0.25, 'eval/mean_iou': 0.5})
    writer.write_scalars(5, {'train/loss': 0.125})
    writer.write_images(5, {'eval/predictions': panel})
  events = _events(tmp_path)
  assert events[0].file_version == 'brain.Event:2'
  scalars = {(e.step, v.tag): float(tf.make_ndarray(v.tensor)) for e in events
             for v in e.summary.value if v.metadata.plugin_data.plugin_name == 'scalars'}
  assert scalars == {(3, 'train/loss'): 0.25, (3, 'eval/mean_iou'): 0.5, (5, 'train/loss'): 0.125}
  [image] = [v for e in events for v in e.summary.value if v.tag == 'eval/predictions']
  assert image.metadata.plugin_data.plugin_name == 'images'
  width, height, *pngs = image.tensor.string_val
  assert (int(width), int(height)) == (7, 5) and len(pngs) == 2
  for png, expected in zip(pngs, panel):
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), expected)


def test_tensorboard_loads_the_run(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator
  with metric_writer.MetricWriter(tmp_path) as writer:
    for step in (1, 2):
      writer.write_scalars(step, {'train/loss': 1.0 / step})
  accumulator = event_accumulator.EventAccumulator(str(tmp_path))
  accumulator.Reload()
  losses = [(t.step, float(tf.make_ndarray(t.tensor_proto)))
            for t in accumulator.Tensors('train/loss')]
  assert losses == [(1, 1.0), (2, 0.5)]


def test_other_processes_write_no_file(tmp_path):
  with metric_writer.MetricWriter(tmp_path, just_logging=True) as writer:
    writer.write_scalars(1, {'train/loss': 1.0})
    writer.write_images(1, {'x': np.zeros((1, 2, 2, 3), np.uint8)})
  assert not list(tmp_path.iterdir())


def test_bad_images_are_refused_by_name(tmp_path):
  with metric_writer.MetricWriter(tmp_path) as writer:
    try:
      writer.write_images(1, {'eval/predictions': np.zeros((4, 4, 3), np.uint8)})
    except ValueError as e:
      assert 'eval/predictions' in str(e) and '(4, 4, 3)' in str(e)
    else:
      raise AssertionError('a 3-d image batch was accepted')


@pytest.mark.slow  # a child process
def test_writing_needs_no_tensorflow(tmp_path):
  code = ('from unet_jax import metric_writer; import numpy as np; '
          f'w = metric_writer.MetricWriter({str(tmp_path)!r}); '
          "w.write_scalars(1, {'a': 1.0}); w.write_images(1, {'b': np.zeros((1, 2, 2, 3), np.uint8)}); "
          'w.close()')
  script = tmp_path / 'write.py'
  script.write_text(code)
  result = subprocess.run([sys.executable, str(REPO / 'tests' / 'without_tensorflow.py'),
                           str(script)], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'tensorflow imported: False' in result.stderr
  assert len(_events(tmp_path)) == 3  # the file version, the scalars, the images
