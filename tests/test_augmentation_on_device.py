"""Augmentation in the train step (`augment.on_device`): aligned, exact on resume, and
distributed as the tf.data augmentation it replaces."""

import functools
import subprocess
import sys

import jax
import numpy as np
import optax

from conftest import REPO, subprocess_env, tiny_config
from test_data_loading import _agreement, _augment, _striped_data, _take
from unet_jax import models, train_step, train_state
from unet_jax.data import augmentation, augmentation_on_device

SIZE = (32, 48)


def _on_device(augment, data, batch_size=6, seed=0):
  """Augmented batches of the on-device path, as numpy."""
  augment.on_device = True
  fn = jax.jit(functools.partial(augmentation_on_device.augment_batch, augment=augment,
                                 size=SIZE))
  batches = augmentation.TrainBatches(data, batch_size, seed, augment, SIZE)
  for batch in batches.iterate(0):
    yield jax.tree.map(np.asarray, fn(batch))


def test_host_sends_frames_at_cache_size_with_a_seed_pair_each():
  data = _striped_data()
  augment = _augment(hflip=True, scale_range=(1.0, 1.6), on_device=True)
  batch = next(augmentation.TrainBatches(data, 6, 0, augment, SIZE).iterate(0))
  assert batch['image'].shape == (6, 52, 77, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].shape == (6, 52, 77)
  seeds = batch[augmentation_on_device.KEY]
  assert seeds.shape == (6, 2) and seeds.dtype == np.uint32
  assert len({tuple(s) for s in seeds}) == 6


def test_zoom_crop_and_flip_move_image_and_mask_together():
  data = _striped_data()
  stream = _on_device(_augment(hflip=True, scale_range=(1.0, 1.6)), data)
  # The same seeds without the flip: the same crops, never mirrored.
  unflipped = _on_device(_augment(scale_range=(1.0, 1.6)), data)
  batches = [next(stream) for _ in range(4)]
  flipped = 0
  for batch in batches:
    for image, label, ref in zip(batch['image'], batch['label'], next(unflipped)['label']):
      assert image.shape == (*SIZE, 3) and image.dtype == np.uint8 and label.shape == SIZE
      assert _agreement(image, label) > 0.8  # all but resampled stripe edges
      assert _agreement(image, label[:, ::-1]) < 0.6  # stripes are not symmetric
      flipped += not np.array_equal(label, ref)
  assert 0 < flipped < 24
  widths = {int(np.sum(np.diff(b['label'][i, 0].astype(int)) != 0))
            for b in batches for i in range(6)}
  assert len(widths) > 2  # zoom: stripe counts change from crop to crop


def test_a_resumed_stream_replays_the_same_augmented_batches():
  data = _striped_data()
  augment = _augment(hflip=True, scale_range=(1.0, 1.6), brightness=0.2, contrast=0.2,
                     saturation=0.2, on_device=True)
  fn = jax.jit(functools.partial(augmentation_on_device.augment_batch, augment=augment,
                                 size=SIZE))
  batches = augmentation.TrainBatches(data, 4, 3, augment, SIZE)
  whole = [fn(b) for b in _take(batches, 0, 5)]
  for got, want in zip(_take(batches, 3, 2), whole[3:]):
    got = fn(got)
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])
  assert not np.array_equal(whole[0]['image'], whole[1]['image'])
  other = fn(_take(augmentation.TrainBatches(data, 4, 4, augment, SIZE), 0, 1)[0])
  assert not np.array_equal(other['image'], whole[0]['image'])


def _summaries(batches):
  """Per-frame statistics that each augmentation moves: colour, contrast, zoom, flip."""
  images = np.concatenate([b['image'] for b in batches]).astype(np.float64)
  labels = np.concatenate([b['label'] for b in batches])
  return {
      'channel_means': images.mean(axis=(1, 2)),           # brightness, saturation
      'frame_std': images.std(axis=(1, 2, 3))[:, None],     # contrast
      'stripe_edges': np.array([[np.sum(np.diff(l[0].astype(int)) != 0)] for l in labels]),
      # The blue channel rises from left to right in every source frame.
      'mirrored': (images[:, :, :8, 2].mean(axis=(1, 2)) >
                   images[:, :, -8:, 2].mean(axis=(1, 2)))[:, None].astype(float),
  }


def test_statistics_match_the_tf_data_augmentation():
  rng = np.random.default_rng(0)
  data = _striped_data(n=8)
  data.images[..., 1] = rng.integers(0, 256, data.images.shape[:3])  # colour to jitter
  data.images[..., 2] = np.linspace(40, 200, data.images.shape[2])[None, None, :]
  settings = dict(hflip=True, scale_range=(1.0, 1.6), brightness=0.15, contrast=0.25,
                  saturation=0.3)
  tf_batches = _take(augmentation.TrainBatches(data, 8, 0, _augment(**settings), SIZE), 0, 60)
  stream = _on_device(_augment(**settings), data, batch_size=8)
  jax_batches = [next(stream) for _ in range(60)]
  ours, theirs = _summaries(jax_batches), _summaries(tf_batches)
  for name in ours:  # 480 frames each: means within 4 standard errors, spreads within 20 %
    a, b = ours[name], theirs[name]
    stderr = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-9
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * stderr), (name, a.mean(0), b.mean(0))
    assert np.all(np.abs(a.std(0) / b.std(0) - 1) < 0.2), (name, a.std(0), b.std(0))


def test_no_augmentation_is_the_identity_and_jitter_keeps_masks():
  data = _striped_data(scale=1.0)
  augment = _augment(on_device=True)
  frames = next(augmentation.TrainBatches(data, 6, 0, augment, SIZE).iterate(0))
  plain = next(_on_device(augment, data))
  np.testing.assert_array_equal(plain['image'], frames['image'])
  np.testing.assert_array_equal(plain['label'], frames['label'])
  jitter = next(_on_device(_augment(brightness=0.3, contrast=0.3, saturation=0.3), data))
  np.testing.assert_array_equal(plain['label'], jitter['label'])
  assert not np.array_equal(plain['image'], jitter['image'])


def test_train_step_augments_a_batch_of_cached_frames():
  config = tiny_config()
  config.data.augment.update(hflip=True, scale_range=(1.0, 1.6), brightness=0.1,
                             on_device=True)
  model = models.create_model(config.model, config.data.num_classes)
  state = train_state.create_train_state(config, model, optax.adam(1e-3), jax.random.key(0))
  data = _striped_data()
  batch = next(augmentation.TrainBatches(data, 6, 0, config.data.augment,
                                         config.data.image_size).iterate(0))
  step = jax.jit(functools.partial(train_step.train_step, config=config,
                                   dropout_key=jax.random.key(1)))
  state, metrics = step(state, batch)
  assert int(state.step) == 1
  assert np.isfinite(float(metrics.loss_sum)) and int(metrics.nonfinite) == 0
  assert float(metrics.pixels) == 6 * np.prod(config.data.image_size)  # at training size


def test_train_step_with_on_device_augmentation_runs_without_tensorflow():
  """The host side (in-memory frames, TrainBatches.frames) and the step import no TensorFlow."""
  code = '''
import sys
sys.modules['tensorflow'] = sys.modules['tensorflow_datasets'] = None  # import fails
import functools, jax, optax
from conftest import REPO, subprocess_env, tiny_config
from test_data_loading import _striped_data
from unet_jax import models, train_state, train_step
from unet_jax.data import augmentation
config = tiny_config()
config.data.augment.update(hflip=True, scale_range=(1.0, 1.6), contrast=0.2, on_device=True)
model = models.create_model(config.model, config.data.num_classes)
state = train_state.create_train_state(config, model, optax.adam(1e-3), jax.random.key(0))
batches = augmentation.TrainBatches(_striped_data(), 6, 0, config.data.augment,
                                    config.data.image_size).iterate(0)
step = jax.jit(functools.partial(train_step.train_step, config=config,
                                 dropout_key=jax.random.key(1)))
for _ in range(2):
  state, metrics = step(state, next(batches))
print('steps', int(state.step), 'loss', float(metrics.loss_sum / metrics.weight_sum))
'''
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO / 'tests', capture_output=True,
                          text=True, env=subprocess_env(PYTHONPATH=f'{REPO}:{REPO / "tests"}'),
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'steps 2 loss' in result.stdout
