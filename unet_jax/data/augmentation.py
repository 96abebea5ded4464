"""Training batches as a pure function of (seed, step, process), augmented with tf.data.

Each epoch is a permutation of the process's shard drawn from (seed, epoch,
process), and each example's augmentation (zoom and crop, flip, colour
jitter) from (seed, its position in the stream, process). So the same seed
gives the same batches, and a resumed run sees exactly the batches it would
have seen. The global batch is the concatenation of the processes' local
batches.

With `augment.on_device` the host only gathers each batch's frames (numpy, at
`cache_size`) and a seed pair per frame; `augmentation_on_device` augments
them inside the train step, with the same distributions.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from typing import Iterator, Sequence

import ml_collections
import numpy as np
from etils import epy

with epy.lazy_imports():  # only the tf.data path needs it (see loading.py)
  import tensorflow as tf

from unet_jax.data import augmentation_on_device
from unet_jax.data.loading import Batch, SplitData
from unet_jax.errors import ConfigError


def cache_size(data: ml_collections.ConfigDict) -> tuple[int, int]:
  """Training frames are kept at the largest zoom (training size x hi): each crop is resized down."""
  lo, hi = data.augment.scale_range
  if not 1.0 <= lo <= hi:
    raise ConfigError(f'config.data.augment.scale_range must satisfy 1 <= lo <= hi, got '
                      f'{tuple(data.augment.scale_range)}')
  return tuple(int(math.ceil(n * hi)) for n in data.image_size)


def augment_example(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor,
                    augment: ml_collections.ConfigDict,
                    size: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
  """Random zoom + crop, flip and colour jitter of one example; stateless in `seed`.

  `image` is uint8 (Hc, Wc, 3) at `cache_size`, `mask` (Hc, Wc). Geometric
  changes apply to both, colour changes to the image only.
  """
  seeds = tf.random.experimental.stateless_split(seed, 5)
  lo, hi = augment.scale_range
  if hi > 1.0:
    # At zoom s the frame is size * s; a size crop of it is a window of
    # cache / s of the cached frame (cache = size * hi), resized to size.
    s = tf.random.stateless_uniform([], seeds[0], lo, hi)
    cache = tf.cast(tf.shape(image)[:2], tf.float32)
    window = tf.cast(tf.round(cache / s), tf.int32)
    span = tf.shape(image)[:2] - window + 1
    offset = tf.random.stateless_uniform([2], seeds[1], 0, 2**30, tf.int32) % span
    image = tf.slice(image, tf.concat([offset, [0]], 0), tf.concat([window, [3]], 0))
    mask = tf.slice(mask, offset, window)
    image = tf.cast(tf.round(tf.image.resize(image, size, 'bilinear', antialias=True)),
                    tf.uint8)
    mask = tf.image.resize(mask[..., None], size, 'nearest')[..., 0]  # no invented classes
  if augment.hflip:
    flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    mask = tf.cond(flip, lambda: mask[:, ::-1], lambda: mask)
  if augment.brightness or augment.contrast or augment.saturation:
    x = tf.cast(image, tf.float32) / 255.0
    jitter = tf.random.experimental.stateless_split(seeds[3], 3)
    if augment.brightness:
      x = tf.image.stateless_random_brightness(x, augment.brightness, jitter[0])
    if augment.contrast:
      x = tf.image.stateless_random_contrast(x, 1 - augment.contrast, 1 + augment.contrast,
                                             jitter[1])
    if augment.saturation:
      x = tf.image.stateless_random_saturation(x, 1 - augment.saturation,
                                               1 + augment.saturation, jitter[2])
    image = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
  return image, mask


def check_available(augment: ml_collections.ConfigDict) -> None:
  """The tf.data path needs TensorFlow: without it, say so before any work."""
  if not augment.on_device and importlib.util.find_spec('tensorflow') is None:
    raise ConfigError('config.data.augment.on_device=False draws training batches with '
                      'tf.data, and TensorFlow is not installed here: set '
                      'config.data.augment.on_device=True (the same augmentation, in the '
                      'train step) or install tensorflow-cpu')


class TrainBatches:
  """Training batches as a pure function of the step (see module docstring)."""

  def __init__(self, data: SplitData, global_batch_size: int, seed: int,
               augment: ml_collections.ConfigDict, image_size: Sequence[int],
               process_index: int = 0, process_count: int = 1):
    if global_batch_size % process_count:
      raise ConfigError(f'batch_size={global_batch_size} is not divisible by the '
                        f'{process_count} processes')
    if data.num_global < global_batch_size:
      raise ConfigError(f'the training split has {data.num_global} frames, fewer than '
                        f'batch_size={global_batch_size}')
    self.data, self.augment, self.image_size = data, augment, tuple(image_size)
    self.local_batch_size = global_batch_size // process_count
    # Every process takes the same number of steps: the smallest shard decides.
    self.shard_size = data.num_global // process_count
    self.steps_per_epoch = self.shard_size // self.local_batch_size  # drops the remainder
    self._seed = int(np.random.SeedSequence([seed, process_index]).generate_state(1)[0] >> 1)

  def dataset(self, start_step: int) -> tf.data.Dataset:
    """Batches of steps `start_step`, `start_step` + 1, ... (endless)."""
    images, masks = tf.constant(self.data.images), tf.constant(self.data.masks)
    local, per_epoch, n = self.local_batch_size, self.steps_per_epoch, len(self.data)

    def example(position):
      step, i = position // local, position % local
      epoch = step // per_epoch
      order = tf.random.experimental.stateless_shuffle(
          tf.range(n), tf.stack([tf.constant(self._seed, tf.int64), epoch]))
      index = order[(step % per_epoch) * local + i]
      seed = tf.stack([tf.constant(self._seed, tf.int64) + 1, position])
      image, mask = augment_example(tf.gather(images, index), tf.gather(masks, index), seed,
                                    self.augment, self.image_size)
      return {'image': image, 'label': tf.cast(mask, tf.int32)}

    ds = tf.data.Dataset.range(start_step * local, 2**62)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

  def iterate(self, start_step: int) -> Iterator[Batch]:
    if self.augment.on_device:
      return self.frames(start_step)
    return self.dataset(start_step).as_numpy_iterator()

  def frames(self, start_step: int) -> Iterator[Batch]:
    """Batches of unaugmented frames at cache size, with their seed pairs (on_device)."""
    local, per_epoch, n = self.local_batch_size, self.steps_per_epoch, len(self.data)
    epoch, order = -1, None
    for step in itertools.count(start_step):
      if step // per_epoch != epoch:
        epoch = step // per_epoch
        order = np.random.default_rng([self._seed, epoch]).permutation(n)
      index = order[(step % per_epoch) * local:(step % per_epoch + 1) * local]
      positions = np.arange(step * local, (step + 1) * local, dtype=np.uint64)
      seeds = np.stack([np.full(local, self._seed + 1, np.uint64), positions], 1)
      yield {'image': self.data.images[index], 'label': self.data.masks[index],
             augmentation_on_device.KEY: (seeds % 2**32).astype(np.uint32)}
