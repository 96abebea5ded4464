"""Loads a split into memory and serves batches that are a function of the step.

A training batch is a pure function of (seed, step): each epoch is a
permutation drawn from (seed, epoch), and augmentation draws from (seed,
step). So a resumed run sees exactly the batches it would have seen, and every
process can compute the global batch and keep only its own slice.
Evaluation walks its split exactly once; the last batch is padded and the
padding marked invalid.
"""

import concurrent.futures
import dataclasses
import os
from typing import Iterator

import ml_collections
import numpy as np
from absl import logging
from etils import epath

from unet_jax import lab_data
from unet_jax import synthetic
from unet_jax.errors import ConfigError, DataError

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class SplitData:
  images: np.ndarray  # (N, H, W, 3) uint8
  masks: np.ndarray   # (N, H, W) uint8
  names: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.names)


def resolve_data_dir(data: ml_collections.ConfigDict, workdir: str) -> epath.Path:
  """The lab-layout folder of this run, generating synthetic data if asked."""
  if data.source == 'synthetic':
    root = data.data_dir or os.path.join(workdir, 'synthetic_data')
    s = data.synthetic
    return synthetic.generate(root, num_clips=s.num_clips, frames_per_clip=s.frames_per_clip,
                              height=s.height, width=s.width, seed=s.seed)
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


def load_split(data_dir: epath.Path, split: str, data: ml_collections.ConfigDict) -> SplitData:
  """Reads, validates and resizes every pair of `split` into memory."""
  pairs = lab_data.split_pairs(
      lab_data.list_pairs(data_dir), split, val_fraction=data.val_fraction,
      test_fraction=data.test_fraction, split_seed=data.split_seed, clip_gap=data.clip_gap)
  if not pairs:
    raise DataError(f'split {split!r} of {data_dir} is empty; adjust '
                    f'config.data.val_fraction / test_fraction or add clips')
  loaded = load_pairs(pairs, data)
  logging.info('Loaded %d %s frames from %s at %s', len(pairs), split, data_dir,
               tuple(data.image_size))
  return loaded


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
    if len(data) < global_batch_size:
      raise ConfigError(f'the training split has {len(data)} frames, fewer than '
                       f'batch_size={global_batch_size}')
    self.data, self.seed, self.hflip = data, seed, hflip
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self.process_index = process_index
    self.steps_per_epoch = len(data) // global_batch_size  # drops the remainder
    self._epoch, self._perm = -1, None

  def _global_indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.data))
    return self._perm[i * self.global_batch_size:(i + 1) * self.global_batch_size]

  def __call__(self, step: int) -> Batch:
    """This process's slice of the global batch of `step`."""
    lo = self.process_index * self.local_batch_size
    idx = self._global_indices(step)[lo:lo + self.local_batch_size]
    images, masks = self.data.images[idx], self.data.masks[idx]
    if self.hflip:
      rng = np.random.default_rng([self.seed, step, 1])
      flip = rng.random(self.global_batch_size)[lo:lo + self.local_batch_size] < 0.5
      images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
      masks = np.where(flip[:, None, None], masks[:, :, ::-1], masks)
    return {'image': images, 'label': masks.astype(np.int32)}

  def iterate(self, start_step: int) -> Iterator[Batch]:
    step = start_step
    while True:
      yield self(step)
      step += 1


def eval_batches(data: SplitData, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[Batch]:
  """Each example once; the last batch is padded with `valid=False` examples."""
  local = global_batch_size // process_count
  n = len(data)
  for start in range(0, n, global_batch_size):
    idx = np.arange(start + process_index * local, start + (process_index + 1) * local)
    valid = idx < n
    idx = np.where(valid, idx, 0)
    yield {'image': data.images[idx], 'label': data.masks[idx].astype(np.int32),
           'valid': valid}
