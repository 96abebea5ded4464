"""Folders of image/mask pairs: the lab layout and any dataset shaped like it.

The lab layout is `CameraRGB/NAME.png` + `CameraMask/NAME.png`: RGB(A) images
(alpha dropped), masks holding the class index in channel 0 with channels 1
and 2 zero. `FolderFormat` generalises it: other sub-folder names, JPEG
images, single-channel masks, or masks drawn in a colour palette. Frame names
are frame numbers; consecutive numbers form clips, and splits are drawn by
clip so near-duplicate neighbours never straddle train and validation.
"""

import dataclasses
import hashlib
import os
from typing import Sequence

import numpy as np
from absl import logging
from etils import epath
from PIL import Image

from unet_jax.errors import DataError

IMAGE_DIR = 'CameraRGB'
MASK_DIR = 'CameraMask'
SPLITS = ('train', 'validation', 'test')
MASK_ENCODINGS = ('channel0', 'single_channel', 'palette')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


@dataclasses.dataclass(frozen=True)
class FolderFormat:
  """Where images and masks live under a data folder, and how masks encode classes.

  mask_encoding: 'channel0' (class in channel 0, other colour channels 0: the
  lab), 'single_channel' (a greyscale class-index PNG), or 'palette' (class i
  drawn in colour `palette[i]`). Mask pixels equal to `ignore_label` (when
  >= 0) are kept and excluded from loss and metrics.
  """
  image_subdir: str = IMAGE_DIR
  mask_subdir: str = MASK_DIR
  mask_encoding: str = 'channel0'
  palette: tuple[tuple[int, int, int], ...] = ()
  num_classes: int = 23
  ignore_label: int = -1

  @classmethod
  def from_config(cls, data) -> 'FolderFormat':
    """The format described by a `config.data`."""
    fmt = cls(data.image_subdir, data.mask_subdir, data.mask_encoding,
              tuple(tuple(int(v) for v in c) for c in data.palette), data.num_classes,
              data.ignore_label)
    fmt.check()
    return fmt

  def check(self) -> None:
    if self.mask_encoding not in MASK_ENCODINGS:
      raise DataError(f'config.data.mask_encoding must be one of {MASK_ENCODINGS}, '
                      f'got {self.mask_encoding!r}')
    if self.mask_encoding == 'palette':
      if len(self.palette) != self.num_classes or any(len(c) != 3 for c in self.palette):
        raise DataError(f'config.data.palette must hold num_classes={self.num_classes} '
                        f'RGB triples for mask_encoding=palette, got {len(self.palette)}')
      if len(set(self.palette)) != len(self.palette):
        raise DataError('config.data.palette repeats a colour')


LAB_FORMAT = FolderFormat()


@dataclasses.dataclass(frozen=True)
class Pair:
  name: str  # file stem, e.g. '000026'
  image_path: epath.Path
  mask_path: epath.Path


def list_pairs(data_dir: str | os.PathLike, fmt: FolderFormat = LAB_FORMAT,
               skip_unmatched: bool = False) -> list[Pair]:
  """Lists matching image/mask files under `data_dir`, sorted by name.

  An image without a mask (or a mask without an image) is an error naming
  both paths, or, with `skip_unmatched`, left out with a warning.
  """
  root = epath.Path(data_dir)
  image_dir, mask_dir = root / fmt.image_subdir, root / fmt.mask_subdir
  if not root.is_dir():
    raise DataError(f'data directory {root} does not exist or is not a directory')
  for d in (image_dir, mask_dir):
    if not d.is_dir():
      raise DataError(f'data directory {root} has no {d.name}/ folder ({d} not found); '
                      f'expected {fmt.image_subdir}/NAME.png + {fmt.mask_subdir}/NAME.png')
  images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
  masks = {p.stem: p for p in mask_dir.glob('*.png')}
  if not images:
    raise DataError(f'no image files ({", ".join(IMAGE_SUFFIXES)}) in {image_dir}')
  lonely_images = sorted(images.keys() - masks.keys())
  lonely_masks = sorted(masks.keys() - images.keys())
  if lonely_images or lonely_masks:
    problems = [f'frame {images[n]} has no mask {mask_dir / (n + ".png")}' for n in lonely_images]
    problems += [f'mask {masks[n]} has no frame in {image_dir}' for n in lonely_masks]
    message = f'{len(problems)} unmatched file(s) in {root}:\n  ' + '\n  '.join(problems[:20])
    if not skip_unmatched:
      raise DataError(message)
    logging.warning('Skipping %s', message)
  return [Pair(n, images[n], masks[n]) for n in sorted(images.keys() & masks.keys())]


def open_image(path: epath.Path) -> Image.Image:
  """The decoded image file; a DataError naming the file if it is unreadable."""
  try:
    with path.open('rb') as f:
      img = Image.open(f)
      img.load()
  except Exception as e:  # PIL raises many types for damaged files.
    raise DataError(f'cannot read image {path}: {e}') from e
  return img


def read_pair(pair: Pair, fmt: FolderFormat = LAB_FORMAT) -> tuple[np.ndarray, np.ndarray]:
  """Returns (image uint8 HxWx3, mask uint8 HxW of class indices), validated."""
  image = np.asarray(open_image(pair.image_path).convert('RGB'))
  mask = decode_mask(open_image(pair.mask_path), fmt, pair.mask_path)
  if image.shape[:2] != mask.shape[:2]:
    raise DataError(f'size mismatch: {pair.image_path} is {image.shape[1]}x{image.shape[0]}, '
                    f'{pair.mask_path} is {mask.shape[1]}x{mask.shape[0]}')
  return image, mask


def decode_mask(mask_file: Image.Image, fmt: FolderFormat, path: epath.Path) -> np.ndarray:
  """Class indices (H, W) uint8 of a mask file in `fmt.mask_encoding`, validated."""
  if fmt.mask_encoding == 'palette':
    rgb = np.asarray(mask_file.convert('RGB')).astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours = np.array([(r << 16) | (g << 8) | b for r, g, b in fmt.palette])
    order = np.argsort(colours)
    pos = np.clip(np.searchsorted(colours[order], keys), 0, len(colours) - 1)
    known = colours[order][pos] == keys
    if not known.all():
      y, x = np.argwhere(~known)[0]
      raise DataError(f'{path}: colour {tuple(int(v) for v in rgb[y, x])} at pixel (x={x}, y={y}) is not in '
                      f'config.data.palette')
    return order[pos].astype(np.uint8)
  mask = np.asarray(mask_file)
  if fmt.mask_encoding == 'single_channel':
    if mask.ndim != 2:
      raise DataError(f'{path}: expected a single-channel mask (mask_encoding=single_channel), '
                      f'got shape {mask.shape}')
  elif mask.ndim == 3:  # channel0
    if mask.shape[-1] >= 3 and (mask[..., 1:3] != 0).any():
      raise DataError(f'{path}: channels 1 and 2 must be 0 in the lab mask '
                      f'encoding (class index in channel 0)')
    mask = mask[..., 0]
  bad = (mask >= fmt.num_classes) & (mask != fmt.ignore_label)
  if bad.any():
    raise DataError(f'{path}: class index {int(mask[bad].max())} >= '
                    f'num_classes={fmt.num_classes}')
  return mask.astype(np.uint8)


def encode_mask(mask: np.ndarray) -> np.ndarray:
  """Class-index mask (H, W) -> the lab's RGBA encoding: class in R, G = B = 0, A = 255."""
  rgba = np.zeros((*mask.shape, 4), np.uint8)
  rgba[..., 0], rgba[..., 3] = mask, 255
  return rgba


def write_pair(data_dir: str | os.PathLike, name: str, image: np.ndarray,
               mask: np.ndarray) -> None:
  """Writes one pair in the lab encoding: RGBA image, RGBA mask with class in R."""
  root = epath.Path(data_dir)
  alpha = np.full((*mask.shape, 1), 255, np.uint8)
  for sub, arr in ((IMAGE_DIR, np.concatenate([image, alpha], -1)), (MASK_DIR, encode_mask(mask))):
    (root / sub).mkdir(parents=True, exist_ok=True)
    with (root / sub / f'{name}.png').open('wb') as f:
      # Fast zlib level: generated data is written once and read often.
      Image.fromarray(arr, 'RGBA').save(f, format='PNG', compress_level=1)


def clip_ids(names: Sequence[str], gap: int = 40) -> list[str]:
  """Clip of each frame: a jump of more than `gap` in frame number starts a clip.

  A clip is named after its first frame. When names are not all frame
  numbers there is no clip structure to find: each frame is its own clip.
  """
  if not all(n.isdigit() for n in names):
    logging.warning('Frame names are not all frame numbers (e.g. %r): splitting by frame, '
                    'not by clip. Give config.data.split_file to control the split.',
                    next(n for n in names if not n.isdigit()))
    return list(names)
  numbers = [int(n) for n in names]
  order = np.argsort(numbers, kind='stable')
  ids = [''] * len(names)
  current, prev = None, None
  for i in order:
    if prev is None or numbers[i] - prev > gap:
      current = names[i]
    ids[i] = current
    prev = numbers[i]
  return ids


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
  """`NAME SPLIT` per line (blank lines and # comments ignored) -> {name: split}."""
  path = epath.Path(path)
  if not path.is_file():
    raise DataError(f'config.data.split_file={str(path)!r} is not a file')
  splits = {}
  for number, line in enumerate(path.read_text().splitlines(), 1):
    line = line.split('#', 1)[0].strip()
    if not line:
      continue
    fields = line.split()
    if len(fields) != 2 or fields[1] not in SPLITS:
      raise DataError(f'{path}:{number}: expected "NAME SPLIT" with SPLIT one of {SPLITS}, '
                      f'got {line!r}')
    splits[fields[0]] = fields[1]
  return splits


def split_of_clip(clip_id: str, val_fraction: float, test_fraction: float,
                  split_seed: int = 0) -> str:
  """Deterministic split of a clip from a hash of its id (stable across runs)."""
  digest = hashlib.sha256(f'{split_seed}:{clip_id}'.encode()).digest()
  u = int.from_bytes(digest[:8], 'big') / 2.0**64
  if u < test_fraction:
    return 'test'
  if u < test_fraction + val_fraction:
    return 'validation'
  return 'train'


def split_pairs(pairs: Sequence[Pair], split: str, *, val_fraction: float,
                test_fraction: float, split_seed: int = 0, clip_gap: int = 40) -> list[Pair]:
  """The pairs of `split` ('train', 'validation', 'test'), split by clip."""
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  clips = clip_ids([p.name for p in pairs], clip_gap)
  return [p for p, c in zip(pairs, clips)
          if split_of_clip(c, val_fraction, test_fraction, split_seed) == split]
