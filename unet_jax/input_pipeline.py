"""Loads this process's shard of a split and serves batches that are a function of the step.

With P processes, process p reads only frames p, p+P, p+2P, ... of a split.
A training batch is a pure function of (seed, step, process): each epoch is a
permutation of the shard drawn from (seed, epoch, process), and augmentation
draws from (seed, step, process). So a resumed run sees exactly the batches it
would have seen. The global batch is the concatenation of the processes'
local batches. Evaluation walks every shard exactly once, all processes in
step; last batches are padded and the padding marked invalid.
"""

import concurrent.futures
import dataclasses
import functools
import os
from typing import Iterator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from unet_jax import lab_data
from unet_jax import synthetic
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
    if jax.process_count() == 1:
      return generate()
    # Process 0 writes first; the others then find it (shared filesystem) or
    # write their own identical copy (separate disks), never racing on one folder.
    if jax.process_index() == 0:
      generate()
    multihost_utils.sync_global_devices('synthetic data generated')
    return generate()
  if data.source == 'folder':
    if not data.data_dir:
      raise DataError('config.data.data_dir is empty: set it to the folder holding '
                      'CameraRGB/ and CameraMask/, e.g. '
                      '--config.data.data_dir=../shared/data/carla_lab/320x240')
    root = epath.Path(data.data_dir)
    if not root.is_dir():
      raise DataError(f'config.data.data_dir={data.data_dir!r} is not a directory')
    return root
  raise ConfigError(f"config.data.source must be 'folder' or 'synthetic', got {data.source!r}")


def load_split(data_dir: epath.Path, split: str, data: ml_collections.ConfigDict,
               process_index: int = 0, process_count: int = 1) -> SplitData:
  """Reads, validates and resizes this process's shard of `split` into memory."""
  pairs = lab_data.split_pairs(
      lab_data.list_pairs(data_dir), split, val_fraction=data.val_fraction,
      test_fraction=data.test_fraction, split_seed=data.split_seed, clip_gap=data.clip_gap)
  if not pairs:
    raise DataError(f'split {split!r} of {data_dir} is empty; adjust '
                    f'config.data.val_fraction / test_fraction or add clips')
  loaded = load_shard(pairs, data, process_index, process_count)
  logging.info('Loaded %d of %d %s frames from %s at %s', len(loaded), len(pairs), split,
               data_dir, tuple(data.image_size))
  return loaded


def load_shard(pairs: list[lab_data.Pair], data: ml_collections.ConfigDict,
               process_index: int = 0, process_count: int = 1) -> SplitData:
  """This process's share of `pairs`, loaded, knowing the size of the whole."""
  loaded = load_pairs(shard_of(pairs, process_index, process_count), data)
  return dataclasses.replace(loaded, global_size=len(pairs))


def load_pairs(pairs: list[lab_data.Pair], data: ml_collections.ConfigDict) -> SplitData:
  """Reads, validates and resizes `pairs` (in parallel threads) into memory."""
  size = tuple(data.image_size)

  def load(pair):
    return lab_data.resize_pair(*lab_data.read_pair(pair, data.num_classes), size)

  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    loaded = list(pool.map(load, pairs))
  return SplitData(np.stack([im for im, _ in loaded]), np.stack([m for _, m in loaded]),
                   tuple(p.name for p in pairs))


class TrainBatches:
  """Training batches as a pure function of the step (see module docstring)."""

  def __init__(self, data: SplitData, global_batch_size: int, seed: int, hflip: bool,
               process_index: int = 0, process_count: int = 1):
    if global_batch_size % process_count:
      raise ConfigError(f'batch_size={global_batch_size} is not divisible by the '
                        f'{process_count} processes')
    if data.num_global < global_batch_size:
      raise ConfigError(f'the training split has {data.num_global} frames, fewer than '
                        f'batch_size={global_batch_size}')
    self.data, self.seed, self.hflip = data, seed, hflip
    self.local_batch_size = global_batch_size // process_count
    self.process_index = process_index
    # Every process takes the same number of steps: the smallest shard decides.
    self.shard_size = data.num_global // process_count
    self.steps_per_epoch = self.shard_size // self.local_batch_size  # drops the remainder
    self._epoch, self._perm = -1, None

  def _indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      rng = np.random.default_rng([self.seed, epoch, self.process_index])
      self._epoch, self._perm = epoch, rng.permutation(len(self.data))[:self.shard_size]
    return self._perm[i * self.local_batch_size:(i + 1) * self.local_batch_size]

  def __call__(self, step: int) -> Batch:
    """This process's part of the global batch of `step`."""
    idx = self._indices(step)
    images, masks = self.data.images[idx], self.data.masks[idx]
    if self.hflip:
      rng = np.random.default_rng([self.seed, step, self.process_index, 1])
      flip = rng.random(len(idx)) < 0.5
      images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
      masks = np.where(flip[:, None, None], masks[:, :, ::-1], masks)
    return {'image': images, 'label': masks.astype(np.int32)}

  def iterate(self, start_step: int) -> Iterator[Batch]:
    step = start_step
    while True:
      yield self(step)
      step += 1


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
