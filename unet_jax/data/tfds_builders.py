"""TFDS builders for folders of image/mask pairs; `carla_lab` is the lab's data.

A builder reads a user's folder (TFDS's `manual_dir`: e.g. the lab's `data/`
with `CameraRGB/` + `CameraMask/`), validates every pair, splits it by clip
and writes it once into the TFDS `data_dir`; later runs load it from there.
TFDS writes into a temporary folder and renames it only when the whole build
succeeded, so a failed build leaves nothing a later run could take for a
complete dataset.

The builder config holds everything the prepared data depends on (folder
format, split fractions and seed, and a fingerprint of the source files), and
its name is derived from it: changing any of them, or adding frames, prepares
a new dataset instead of reusing a stale one.

From the command line, with the lab defaults (20 % of clips for validation):
  tfds build carla_lab --imports=unet_jax.data.tfds_builders \
      --manual_dir=../shared/data/carla_lab/320x240 --data_dir=/tmp/tfds
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os

import ml_collections
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from unet_jax.data import layouts, reading, resize
from unet_jax.errors import ConfigError, DataError

_MANUAL_INSTRUCTIONS = """\
Point manual_dir at a folder holding the images and masks (the lab's data/
folder: CameraRGB/NAME.png and CameraMask/NAME.png, class index in channel 0
of each mask), e.g. --manual_dir=../shared/data/carla_lab/320x240.
"""


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  """How to read the folder and split it; see `reading.FolderFormat`."""
  image_subdir: str = reading.IMAGE_DIR
  mask_subdir: str = reading.MASK_DIR
  mask_encoding: str = 'channel0'
  palette: tuple[tuple[int, int, int], ...] = ()
  num_classes: int = 23
  ignore_label: int = -1
  val_fraction: float = 0.2
  test_fraction: float = 0.0
  split_seed: int = 0
  clip_gap: int = 40
  split_file: str = ''
  skip_bad_pairs: bool = False
  source_fingerprint: str = ''
  label_map: tuple[tuple[int, int], ...] = ()
  layout: str = 'folder'
  image_dir_pattern: str = ''
  mask_dir_pattern: str = ''
  list_files: tuple[tuple[str, str], ...] = ()
  path_prefix_map: str = ''
  stored_size: tuple[int, ...] = ()  # (H, W) frames and masks are stored at; () = as read

  @property
  def format(self) -> reading.FolderFormat:
    return reading.FolderFormat(self.image_subdir, self.mask_subdir, self.mask_encoding,
                                 self.palette, self.num_classes, self.ignore_label,
                                 self.label_map)

  @property
  def layout_spec(self) -> layouts.Layout:
    return layouts.Layout(self.layout, self.image_dir_pattern, self.mask_dir_pattern,
                          self.list_files, self.path_prefix_map)


class SegmentationFolder(tfds.core.GeneratorBasedBuilder):
  """Images and masks from a folder, split by clip (or by a split file)."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'First version.',
                   '1.1.0': 'array_record files (read without TensorFlow); stored_size.'}
  BUILDER_CONFIGS = [FolderConfig(name='default', description='The lab layout and encoding.')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_INSTRUCTIONS

  def __init__(self, *, file_format=None, **kwargs):
    # array_record: random access, and read by `tfds` data sources without TensorFlow.
    super().__init__(file_format=file_format or 'array_record', **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='Frames and class-index masks from a folder of image/mask pairs.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3)),
            'mask': tfds.features.Image(shape=(None, None, 1)),
            'name': tfds.features.Text(),
            'clip': tfds.features.Text(),
        }),
        supervised_keys=('image', 'mask'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    cfg = self.builder_config
    cfg.format.check()
    splits = layouts.split_pairs(
        epath.Path(dl_manager.manual_dir), cfg.layout_spec, cfg.format,
        split_file=cfg.split_file, val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction, split_seed=cfg.split_seed, clip_gap=cfg.clip_gap,
        skip_unmatched=cfg.skip_bad_pairs)
    return {split: self._generate_examples(members, split) for split, members in splits.items()}

  def _generate_examples(self, members, split: str):
    fmt, skipped = self.builder_config.format, []
    for pair, clip in members:
      try:
        image, mask = reading.read_pair(pair, fmt)
        if self.builder_config.stored_size:
          image = resize.image(image, self.builder_config.stored_size)
          mask = resize.mask(mask, self.builder_config.stored_size)
      except DataError as e:
        if not self.builder_config.skip_bad_pairs:
          raise
        skipped.append(str(e))
        continue
      yield pair.name, {'image': image, 'mask': mask[..., None], 'name': pair.name,
                        'clip': clip}
    if skipped:
      logging.warning('Skipped %d bad pair(s) of split %s (config.data.skip_bad_pairs):\n  %s',
                      len(skipped), split, '\n  '.join(skipped[:20]))


class CarlaLab(SegmentationFolder):
  """The lab's CARLA frames: CameraRGB/ + CameraMask/, 23 classes, split by clip."""
  BUILDER_CONFIGS = [FolderConfig(
      name='default', description='The lab data; 20 % of clips for validation, seed 0.')]


def source_fingerprint(source_dir: str | os.PathLike, fmt: reading.FolderFormat,
                       layout: layouts.Layout = layouts.Layout()) -> str:
  """A hash of the names and sizes of the source files (and of the list files)."""
  h = hashlib.sha256()
  root = epath.Path(source_dir)
  if layout.has_splits:
    for split, pairs in sorted(layouts.pairs_by_split(root, layout, fmt, True).items()):
      for p in pairs:
        for path in (p.image_path, p.mask_path):
          h.update(f'{split}:{path}:{path.stat().length}\n'.encode())
    for _, path in layout.list_files:
      h.update(epath.Path(path).read_bytes())
    return h.hexdigest()[:16]
  if not root.is_dir():
    raise DataError(f'data directory {root} does not exist or is not a directory')
  for sub in (fmt.image_subdir, fmt.mask_subdir):
    folder = root / sub
    if not folder.is_dir():
      raise DataError(f'data directory {root} has no {sub}/ folder ({folder} not found)')
    for name in sorted(os.listdir(folder)):
      h.update(f'{sub}/{name}:{os.path.getsize(folder / name)}\n'.encode())
  return h.hexdigest()[:16]


def folder_config(data: ml_collections.ConfigDict, source_dir: str | os.PathLike) -> FolderConfig:
  """The builder config of `config.data` reading `source_dir`."""
  fmt = reading.FolderFormat.from_config(data)
  layout = layouts.Layout.from_config(data)
  fields = dict(
      image_subdir=fmt.image_subdir, mask_subdir=fmt.mask_subdir,
      mask_encoding=fmt.mask_encoding, palette=fmt.palette, num_classes=fmt.num_classes,
      ignore_label=fmt.ignore_label, label_map=fmt.label_map, layout=layout.kind,
      image_dir_pattern=layout.image_dir_pattern, mask_dir_pattern=layout.mask_dir_pattern,
      list_files=tuple((s, os.path.abspath(p)) for s, p in layout.list_files),
      path_prefix_map=layout.path_prefix_map, val_fraction=float(data.val_fraction),
      test_fraction=float(data.test_fraction), split_seed=int(data.split_seed),
      clip_gap=int(data.clip_gap),
      split_file=os.path.abspath(data.split_file) if data.split_file else '',
      skip_bad_pairs=bool(data.skip_bad_pairs), stored_size=stored_size(data),
      source_fingerprint=source_fingerprint(source_dir, fmt, layout))
  if data.split_file:  # the split list's content decides, not only its path
    fields['split_file_sha'] = hashlib.sha256(
        epath.Path(data.split_file).read_bytes()).hexdigest()[:16]
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
  fields.pop('split_file_sha', None)
  name = (f'v{round(100 * data.val_fraction)}-t{round(100 * data.test_fraction)}'
          f'-s{data.split_seed}-{digest}')
  return FolderConfig(name=name, description=f'Prepared from {source_dir}.', **fields)


def stored_size(data: ml_collections.ConfigDict) -> tuple[int, ...]:
  """`config.data.stored_size`, checked: () or (H, W)."""
  size = tuple(data.get('stored_size', ()) or ())
  if size and (len(size) != 2 or not all(isinstance(n, int) and n > 0 for n in size)):
    raise ConfigError(f'config.data.stored_size must be () or (height, width) in pixels, got '
                    f'{size!r}')
  return size


def builder(data: ml_collections.ConfigDict, cfg: FolderConfig) -> SegmentationFolder:
  """The builder of `cfg` (from `folder_config`), not necessarily prepared."""
  cls = CarlaLab if cfg.format == reading.LAB_FORMAT else SegmentationFolder
  return cls(config=cfg, data_dir=data.tfds_data_dir or None)


def prepare(data: ml_collections.ConfigDict,
            source_dir: str | os.PathLike) -> SegmentationFolder:
  """The builder of `config.data` over `source_dir`, built first unless already prepared.

  Runs that start together on one machine (a sweep with --parallel) would
  build the same dataset at once: a lock file beside it lets one build while
  the others wait, then load what it wrote.
  """
  cfg = folder_config(data, source_dir)  # fingerprints the source once
  dataset_builder = builder(data, cfg)
  if dataset_builder.is_prepared():
    return dataset_builder
  target = epath.Path(dataset_builder.data_dir)
  lock = contextlib.nullcontext()
  if '://' not in str(target):  # local disk: flock works; remote storage builds unlocked
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = _file_lock(f'{target}.lock')
  with lock:
    # A new builder reads what another run may have written meanwhile.
    dataset_builder = builder(data, cfg)
    if not dataset_builder.is_prepared():
      logging.info('Preparing %s from %s into %s (once; later runs load it from there).',
                   dataset_builder.info.full_name, source_dir, dataset_builder.data_dir)
      dataset_builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=os.fspath(source_dir)))
  return dataset_builder


@contextlib.contextmanager
def _file_lock(path: str):
  with open(path, 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
