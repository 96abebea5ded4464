"""tf.data training batches: a pure function of (seed, step, process), augmentation aligned."""

import ml_collections
import numpy as np
import pytest

from conftest import tiny_config
from unet_jax import errors
from unet_jax.data import augmentation, loading


def _augment(**kw) -> ml_collections.ConfigDict:
  augment = tiny_config().data.augment
  augment.update(kw)
  return augment


def _numbered_data(n=10, size=(32, 48)) -> loading.SplitData:
  """Frame i is filled with value i, its mask with class i: batches show which frames they hold."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, *size, 3))
  masks = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, *size))
  return loading.SplitData(images.copy(), masks.copy(), tuple(map(str, range(n))))


def _take(batches, start, count):
  it = batches.iterate(start)
  return [next(it) for _ in range(count)]


def test_batches_are_a_pure_function_of_seed_and_step():
  data, augment = _numbered_data(), _augment(hflip=True, brightness=0.2)
  a = augmentation.TrainBatches(data, 4, 3, augment, (32, 48))
  b = augmentation.TrainBatches(data, 4, 3, augment, (32, 48))
  stream = _take(a, 0, 7)
  for start in (5, 2):  # a resumed stream continues exactly where the first one was
    for got, want in zip(_take(b, start, 2), stream[start:]):
      np.testing.assert_array_equal(got['image'], want['image'])
      np.testing.assert_array_equal(got['label'], want['label'])
  other = _take(augmentation.TrainBatches(data, 4, 4, augment, (32, 48)), 0, 1)[0]
  assert not np.array_equal(other['image'], stream[0]['image'])


def test_each_epoch_is_a_permutation_of_the_shard():
  batches = augmentation.TrainBatches(_numbered_data(10), 4, 0, _augment(), (32, 48))
  assert batches.steps_per_epoch == 2  # 10 frames, batches of 4: 2 frames dropped per epoch
  epochs = [np.concatenate([b['label'][:, 0, 0] for b in _take(batches, 2 * e, 2)])
            for e in range(3)]
  for frames in epochs:
    assert len(set(frames)) == 8
  assert len({tuple(f) for f in epochs}) == 3  # a new order each epoch


def test_processes_read_disjoint_shards_and_take_equal_steps(tiny_data_dir, tmp_path):
  config = tiny_config().data
  config.tfds_data_dir = str(tmp_path / 'tfds')
  shards = [loading.load_split(tiny_data_dir, 'train', config, p, 2) for p in range(2)]
  whole = loading.load_split(tiny_data_dir, 'train', config)
  assert sorted(shards[0].names + shards[1].names) == sorted(whole.names)
  assert not set(shards[0].names) & set(shards[1].names)
  assert shards[0].num_global == shards[1].num_global == len(whole)
  streams = [augmentation.TrainBatches(s, 4, 3, config.augment, config.image_size, p, 2)
             for p, s in enumerate(shards)]
  assert streams[0].steps_per_epoch == streams[1].steps_per_epoch
  assert all(len(_take(s, 5, 1)[0]['image']) == 2 for s in streams)  # global batch / processes


def _striped_data(n=6, size=(32, 48), scale=1.6) -> loading.SplitData:
  """Masks of uneven vertical stripes; the image's red channel is 50 x the class."""
  h, w = (int(np.ceil(s * scale)) for s in size)
  x = np.arange(w)
  classes = ((x // 7 + x // 13) % 5).astype(np.uint8)
  masks = np.broadcast_to(classes, (n, h, w)).copy()
  images = np.zeros((n, h, w, 3), np.uint8)
  images[..., 0] = masks * 50
  return loading.SplitData(images, masks, tuple(map(str, range(n))))


def _agreement(image, label):
  return np.mean(np.abs(image[..., 0].astype(int) - 50 * label) < 25)


def test_zoom_crop_and_flip_move_image_and_mask_together():
  data = _striped_data()
  augment = _augment(hflip=True, scale_range=(1.0, 1.6))
  assert augmentation.cache_size(tiny_config().data.copy_and_resolve_references()) == (32, 48)
  batches = _take(augmentation.TrainBatches(data, 6, 0, augment, (32, 48)), 0, 4)
  plain = _take(augmentation.TrainBatches(data, 6, 0, _augment(scale_range=(1.0, 1.6)),
                                            (32, 48)), 0, 4)
  flipped = 0
  for batch, unflipped in zip(batches, plain):
    for image, label, ref in zip(batch['image'], batch['label'], unflipped['label']):
      assert image.shape == (32, 48, 3) and label.shape == (32, 48)
      assert _agreement(image, label) > 0.8  # all but resampled stripe edges
      # The stripes are not symmetric: flipping only one of the two would show.
      assert _agreement(image, label[:, ::-1]) < 0.6
      flipped += not np.array_equal(label, ref)
  assert 0 < flipped < 24
  # Zoom: stripe widths change from crop to crop.
  widths = {int(np.sum(np.diff(b['label'][i, 0].astype(int)) != 0))
            for b in batches for i in range(6)}
  assert len(widths) > 2


def test_colour_jitter_changes_images_only():
  data = _striped_data(scale=1.0)
  plain = _take(augmentation.TrainBatches(data, 6, 0, _augment(hflip=True), (32, 48)), 0, 2)
  jitter = _take(augmentation.TrainBatches(
      data, 6, 0, _augment(hflip=True, brightness=0.3, contrast=0.3, saturation=0.3),
      (32, 48)), 0, 2)
  for p, j in zip(plain, jitter):
    np.testing.assert_array_equal(p['label'], j['label'])
    assert not np.array_equal(p['image'], j['image'])
    assert j['image'].dtype == np.uint8


def test_zoom_below_one_is_refused():
  data = tiny_config().data
  data.augment.scale_range = (0.8, 1.2)
  with pytest.raises(errors.ConfigError, match='scale_range must satisfy 1 <= lo <= hi'):
    augmentation.cache_size(data)
