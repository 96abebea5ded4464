"""Input pipeline: the prepared TFDS split in memory, and tf.data training batches.

A split is prepared once by the TFDS builder of `datasets/folder.py`, then
read, resized and held in memory (this process's shard only: with P processes,
process p reads the p-th of P contiguous, near-equal parts of the split). Training batches come
from a tf.data pipeline that is a pure function of (seed, step, process): each
epoch is a permutation of the shard drawn from (seed, epoch, process), and
each example's augmentation from (seed, its position in the stream, process).
So the same seed gives the same batches, and a resumed run sees exactly the
batches it would have seen. The global batch is the concatenation of the
processes' local batches. Evaluation walks every shard exactly once, all
processes in step; last batches are padded and the padding marked invalid.
"""

import concurrent.futures
import dataclasses
import functools
import math
import os
from typing import Iterator, Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from unet_jax import lab_data
from unet_jax import synthetic
from unet_jax.datasets import folder
from unet_jax.errors import ConfigError, DataError

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class SplitData:
  """This process's frames of a split (all of them when there is one process)."""
  images: np.ndarray  # (n, H, W, 3) uint8
  masks: np.ndarray   # (n, H, W) uint8
  names: tuple[str, ...]
  global_size: int = -1  # frames of the split over all processes; -1: len(names)

  def __len__(self) -> int:
    return len(self.names)

  @property
  def num_global(self) -> int:
    return len(self.names) if self.global_size < 0 else self.global_size


def shard_of(items: Sequence, process_index: int, process_count: int) -> Sequence:
  """Process `process_index`'s share: every `process_count`-th item."""
  return items[process_index::process_count]


def resolve_data_dir(data: ml_collections.ConfigDict, workdir: str) -> epath.Path:
  """The lab-layout folder of this run, generating synthetic data if asked."""
  if data.source == 'synthetic':
    root = data.data_dir or os.path.join(workdir, 'synthetic_data')
    s = data.synthetic
    generate = functools.partial(
        synthetic.generate, root, num_clips=s.num_clips, frames_per_clip=s.frames_per_clip,
        height=s.height, width=s.width, seed=s.seed)
    return _process_zero_first(generate, 'synthetic data generated')
  if data.source == 'folder':
    if not data.data_dir and data.layout == 'list_files' and data.list_files.train:
      return epath.Path(os.path.dirname(os.path.abspath(data.list_files.train)))
    if not data.data_dir:
      raise DataError('config.data.data_dir is empty: set it to the folder holding '
                      'CameraRGB/ and CameraMask/, e.g. '
                      '--config.data.data_dir=../shared/data/carla_lab/320x240')
    root = epath.Path(data.data_dir)
    if not root.is_dir():
      raise DataError(f'config.data.data_dir={data.data_dir!r} is not a directory')
    return root
  raise ConfigError(f"config.data.source must be 'folder' or 'synthetic', got {data.source!r}")


def _process_zero_first(fn, what: str):
  """Runs `fn` on process 0, then on the others.

  The others then find its result (shared filesystem) or write their own
  identical copy (separate disks), never racing on one folder.
  """
  if jax.process_count() == 1:
    return fn()
  if jax.process_index() == 0:
    fn()
  multihost_utils.sync_global_devices(what)
  return fn()


def prepared_builder(data: ml_collections.ConfigDict,
                     source_dir: epath.Path) -> folder.SegmentationFolder:
  """The TFDS builder of `config.data` over `source_dir`, prepared."""
  return _process_zero_first(functools.partial(folder.prepare, data, source_dir),
                             'dataset prepared')


def resize_image(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """uint8 (H, W, 3) -> uint8 `size`: area (box) filter shrinking, bilinear growing."""
  shape = tf.shape(image)
  shrinking = (shape[0] >= size[0]) & (shape[1] >= size[1])
  resized = tf.cond(shrinking, lambda: tf.image.resize(image, size, 'area'),
                    lambda: tf.image.resize(image, size, 'bilinear'))
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def resize_mask(mask: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """(H, W) class indices -> `size`, nearest neighbour (no invented classes)."""
  return tf.image.resize(mask[..., None], size, 'nearest')[..., 0]


def load_split(source_dir: epath.Path, split: str, data: ml_collections.ConfigDict,
               process_index: int = 0, process_count: int = 1,
               size: Sequence[int] | None = None) -> SplitData:
  """This process's shard of `split`, resized to `size` (default: the training size)."""
  size = tuple(size or data.image_size)
  dataset_builder = prepared_builder(data, source_dir)
  splits = dataset_builder.info.splits
  if split not in splits:
    raise DataError(f'{dataset_builder.info.full_name} has no {split!r} split '
                    f'(it has {sorted(splits.keys())}); set config.data.val_fraction / '
                    f'test_fraction or the split file')
  # Each process reads only its own contiguous part of the split's records.
  shard = tfds.even_splits(split, n=process_count)[process_index]
  ds = dataset_builder.as_dataset(split=shard, shuffle_files=False)
  ds = ds.map(
      lambda ex: (resize_image(ex['image'], size), resize_mask(ex['mask'][..., 0], size),
                  ex['name']), num_parallel_calls=tf.data.AUTOTUNE)
  images, masks, names = [], [], []
  for image, mask, name in ds.as_numpy_iterator():
    images.append(image), masks.append(mask), names.append(name.decode())
  logging.info('Loaded %d of %d %s frames of %s at %s', len(names),
               splits[split].num_examples, split, dataset_builder.info.full_name, size)
  return SplitData(np.stack(images), np.stack(masks), tuple(names),
                   global_size=splits[split].num_examples)


def load_shard(pairs: list[lab_data.Pair], data: ml_collections.ConfigDict,
               process_index: int = 0, process_count: int = 1) -> SplitData:
  """This process's share of `pairs`, loaded, knowing the size of the whole."""
  loaded = load_pairs(shard_of(pairs, process_index, process_count), data)
  return dataclasses.replace(loaded, global_size=len(pairs))


def load_pairs(pairs: list[lab_data.Pair], data: ml_collections.ConfigDict) -> SplitData:
  """Reads, validates and resizes `pairs` of any folder (no TFDS build) into memory."""
  size, fmt = tuple(data.image_size), lab_data.FolderFormat.from_config(data)
  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    loaded = list(pool.map(lambda pair: lab_data.read_pair(pair, fmt), pairs))
  return SplitData(np.stack([resize_image(im, size).numpy() for im, _ in loaded]),
                   np.stack([resize_mask(m, size).numpy() for _, m in loaded]),
                   tuple(p.name for p in pairs))


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
    mask = resize_mask(mask, size)
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
    return self.dataset(start_step).as_numpy_iterator()


def eval_batches(data: SplitData, global_batch_size: int,
                 process_count: int = 1) -> Iterator[Batch]:
  """This shard's frames once each, in as many batches as every other process.

  Batches are padded with `valid=False` examples, so all processes run the
  same number of evaluation steps over shards of different sizes.
  """
  local = global_batch_size // process_count
  largest_shard = -(-data.num_global // process_count)
  for start in range(0, largest_shard, local):
    idx = np.arange(start, start + local)
    valid = idx < len(data)
    idx = np.where(valid, idx, 0)
    yield {'image': data.images[idx], 'label': data.masks[idx].astype(np.int32),
           'valid': valid}
