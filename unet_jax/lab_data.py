"""The lab's on-disk layout: `CameraRGB/NAME.png` + `CameraMask/NAME.png`.

Images are RGB(A) PNGs (alpha dropped); masks hold the class index in
channel 0, channels 1 and 2 zero (the lab encoding). Frame names are frame
numbers; consecutive numbers form clips, and splits are drawn by clip so
near-duplicate neighbours never straddle train and validation.
"""

import dataclasses
import hashlib
import os
from typing import Sequence

import numpy as np
from etils import epath
from PIL import Image

from unet_jax.errors import DataError

IMAGE_DIR = 'CameraRGB'
MASK_DIR = 'CameraMask'
SPLITS = ('train', 'validation', 'test')


@dataclasses.dataclass(frozen=True)
class Pair:
  name: str  # file stem, e.g. '000026'
  image_path: epath.Path
  mask_path: epath.Path


def list_pairs(data_dir: str | os.PathLike) -> list[Pair]:
  """Lists matching image/mask files under `data_dir`, sorted by name."""
  root = epath.Path(data_dir)
  image_dir, mask_dir = root / IMAGE_DIR, root / MASK_DIR
  for d in (image_dir, mask_dir):
    if not d.is_dir():
      raise DataError(f'data directory {root} has no {d.name}/ folder ({d} not found); '
                      f'expected the lab layout {IMAGE_DIR}/NAME.png + {MASK_DIR}/NAME.png')
  images = {p.stem: p for p in image_dir.glob('*.png')}
  masks = {p.stem: p for p in mask_dir.glob('*.png')}
  if not images:
    raise DataError(f'no PNG frames in {image_dir}')
  lonely_images = sorted(images.keys() - masks.keys())
  lonely_masks = sorted(masks.keys() - images.keys())
  if lonely_images or lonely_masks:
    problems = [f'frame {images[n]} has no mask {mask_dir / (n + ".png")}' for n in lonely_images]
    problems += [f'mask {masks[n]} has no frame {image_dir / (n + ".png")}' for n in lonely_masks]
    raise DataError('unmatched files in ' + str(root) + ':\n  ' + '\n  '.join(problems[:20]))
  return [Pair(n, images[n], masks[n]) for n in sorted(images)]


def open_image(path: epath.Path) -> Image.Image:
  """The decoded image file; a DataError naming the file if it is unreadable."""
  try:
    with path.open('rb') as f:
      img = Image.open(f)
      img.load()
  except Exception as e:  # PIL raises many types for damaged files.
    raise DataError(f'cannot read image {path}: {e}') from e
  return img


def read_pair(pair: Pair, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns (image uint8 HxWx3, mask uint8 HxW), validated."""
  image = np.asarray(open_image(pair.image_path))
  mask = np.asarray(open_image(pair.mask_path))
  if image.ndim != 3 or image.shape[-1] not in (3, 4):
    raise DataError(f'{pair.image_path}: expected an RGB or RGBA image, got shape {image.shape}')
  if mask.ndim == 3:
    if mask.shape[-1] >= 3 and (mask[..., 1:3] != 0).any():
      raise DataError(f'{pair.mask_path}: channels 1 and 2 must be 0 in the lab mask '
                      f'encoding (class index in channel 0)')
    mask = mask[..., 0]
  if image.shape[:2] != mask.shape[:2]:
    raise DataError(f'size mismatch: {pair.image_path} is {image.shape[1]}x{image.shape[0]}, '
                    f'{pair.mask_path} is {mask.shape[1]}x{mask.shape[0]}')
  if mask.max() >= num_classes:
    raise DataError(f'{pair.mask_path}: class index {int(mask.max())} >= '
                    f'num_classes={num_classes}')
  return image[..., :3].astype(np.uint8), mask.astype(np.uint8)


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

  A clip is named after its first frame. Names must be frame numbers.
  """
  try:
    numbers = [int(n) for n in names]
  except ValueError as e:
    raise DataError(f'frame names must be frame numbers to find clips: {e}') from e
  order = np.argsort(numbers, kind='stable')
  ids = [''] * len(names)
  current, prev = None, None
  for i in order:
    if prev is None or numbers[i] - prev > gap:
      current = names[i]
    ids[i] = current
    prev = numbers[i]
  return ids


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


def resize_pair(image: np.ndarray, mask: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Resizes to (H, W): image with area (box) / bilinear, mask with nearest."""
  h, w = size
  if image.shape[:2] == (h, w):
    return image, mask
  shrinking = image.shape[0] >= h and image.shape[1] >= w
  resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
  image = np.asarray(Image.fromarray(image).resize((w, h), resample))
  mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST))
  return image, mask
