"""A split of a dataset in memory: prepared once (TFDS), loaded, resized, sharded.

A split is prepared once by the TFDS builder of `data/tfds_builders.py` (as
`array_record` files), then read without TensorFlow (`tfds` data sources and
PIL), resized (`data/resize.py`) and held in memory (this process's shard only: with P processes,
process p reads the p-th of P contiguous, near-equal parts of the split, `shard_bounds`;
a folder scored directly is sharded the same way). Training batches are drawn
from it by `data/augmentation.py`. Evaluation walks every shard exactly once,
all processes in step; last batches are padded and the padding marked invalid.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import io
import os
from typing import Iterator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath, epy
from jax.experimental import multihost_utils
from PIL import Image

from unet_jax.data import reading, synthetic
# Imported on first use: in-memory frames (SplitData) need no dataset library.
with epy.lazy_imports():
  import tensorflow_datasets as tfds
  from unet_jax.data import tfds_builders
from unet_jax.data import resize
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


def shard_bounds(size: int, process_index: int, process_count: int) -> tuple[int, int]:
  """[lo, hi) of process `process_index`'s contiguous share of `size` items.

  The one sharding scheme of the code: near-equal contiguous parts, the first
  `size % process_count` one item longer (what `tfds.even_splits` does).
  """
  base, extra = divmod(size, process_count)
  lo = process_index * base + min(process_index, extra)
  return lo, lo + base + (process_index < extra)


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
  if data.source == 'prepared':
    if not data.data_dir:
      raise DataError("config.data.data_dir is empty: with config.data.source='prepared' set "
                      'it to a prepared dataset folder (the one holding dataset_info.json)')
    return epath.Path(data.data_dir)
  raise ConfigError("config.data.source must be 'folder', 'synthetic' or 'prepared', got "
                    f'{data.source!r}')


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


def prepared_builder(data: ml_collections.ConfigDict, source_dir: epath.Path):
  """The prepared TFDS dataset of `config.data` over `source_dir` (built first if needed).

  With `config.data.source='prepared'`, `source_dir` is the dataset itself
  (`NAME/CONFIG/VERSION`, e.g. copied from the machine that prepared it): it
  is read as it is, and neither the source frames nor TensorFlow are needed.
  """
  if data.source == 'prepared':
    return _prepared_dataset(source_dir)
  return _process_zero_first(functools.partial(tfds_builders.prepare, data, source_dir),
                             'dataset prepared')


def _prepared_dataset(path: epath.Path):
  if not (path / 'dataset_info.json').exists():
    raise DataError(f'config.data.data_dir={path} is not a prepared dataset: it has no '
                    'dataset_info.json (point it at the NAME/CONFIG/VERSION folder a '
                    'build wrote)')
  dataset_builder = tfds.builder_from_directory(os.fspath(path))
  file_format = getattr(dataset_builder.info.file_format, 'value', None)
  if file_format != 'array_record':
    raise DataError(f'the prepared dataset {path} holds {file_format} files; this version '
                    'reads array_record files: prepare it again from its source frames')
  return dataset_builder


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
  # Each process reads only its own contiguous part of the split's records, undecoded:
  # the frames are decoded and resized by a pool of threads.
  lo, hi = shard_bounds(splits[split].num_examples, process_index, process_count)
  skip = tfds.decode.SkipDecoding()
  source = dataset_builder.as_data_source(split=f'{split}[{lo}:{hi}]',
                                          decoders={'image': skip, 'mask': skip})
  records = [source[i] for i in range(len(source))]

  def decoded(record) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(io.BytesIO(record['image'])).convert('RGB'))
    mask = np.asarray(Image.open(io.BytesIO(record['mask'])))
    return resize.image(image, size), resize.mask(mask.reshape(mask.shape[:2]), size)

  frames = _map_threads(decoded, records)
  names = tuple(r['name'].decode() if isinstance(r['name'], bytes) else str(r['name'])
                for r in records)
  loaded = SplitData(np.stack([im for im, _ in frames]), np.stack([m for _, m in frames]),
                     names, global_size=splits[split].num_examples)
  _check_labels(loaded, data, f'{dataset_builder.data_dir} ({split})')
  logging.info('Loaded %d of %d %s frames of %s at %s', len(names),
               splits[split].num_examples, split, dataset_builder.info.full_name, size)
  return loaded


def _map_threads(fn, items: list) -> list:
  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    return list(pool.map(fn, items))


def _check_labels(loaded: SplitData, data: ml_collections.ConfigDict, where: str) -> None:
  """A prepared dataset of another label set fails here, not as a wrong mIoU."""
  if not len(loaded):
    return
  labels = np.unique(loaded.masks)
  bad = labels[(labels >= data.num_classes) & (labels != data.ignore_label)]
  if bad.size:
    raise DataError(f'{where} has mask values {bad.tolist()[:10]} outside the '
                    f'{data.num_classes} classes of config.data.num_classes (ignore_label '
                    f'{data.ignore_label}): is it a dataset of another label set?')


def load_shard(pairs: list[reading.Pair], data: ml_collections.ConfigDict,
               process_index: int = 0, process_count: int = 1) -> SplitData:
  """This process's share of `pairs`, loaded, knowing the size of the whole."""
  lo, hi = shard_bounds(len(pairs), process_index, process_count)
  loaded = load_pairs(pairs[lo:hi], data)
  return dataclasses.replace(loaded, global_size=len(pairs))


def load_pairs(pairs: list[reading.Pair], data: ml_collections.ConfigDict) -> SplitData:
  """Reads, validates and resizes `pairs` of any folder (no TFDS build) into memory."""
  size, fmt = tuple(data.image_size), reading.FolderFormat.from_config(data)

  def loaded(pair: reading.Pair) -> tuple[np.ndarray, np.ndarray]:
    image, mask = reading.read_pair(pair, fmt)
    return resize.image(image, size), resize.mask(mask, size)

  frames = _map_threads(loaded, pairs)
  return SplitData(np.stack([im for im, _ in frames]), np.stack([m for _, m in frames]),
                   tuple(p.name for p in pairs))


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
