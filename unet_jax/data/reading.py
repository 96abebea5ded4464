"""Folders of image/mask pairs: the lab layout and any dataset shaped like it.

The lab layout is `CameraRGB/NAME.png` + `CameraMask/NAME.png`: RGB(A) images
(alpha dropped), masks holding the class index in channel 0 with channels 1
and 2 zero. `FolderFormat` generalises it: other sub-folder names, JPEG or
greyscale (8- or 16-bit) images, and masks as single-channel 8- or 16-bit
class ids, paletted PNGs (the palette index is the class) or colours of an
RGB palette (typed in the config or read from a `name,r,g,b` CSV file); a
label map then turns raw ids into training ids (many may map to the ignore
label). Frame names are frame numbers; consecutive numbers form clips, and
splits are drawn by clip so near-duplicate neighbours never straddle train
and validation. Other layouts (a folder per split, list files) are in
`data/layouts.py`.
"""

import dataclasses
import hashlib
import os
from typing import Sequence

import numpy as np
from absl import logging
from etils import epath
from PIL import Image

from unet_jax.errors import ConfigError, DataError

IMAGE_DIR = 'CameraRGB'
MASK_DIR = 'CameraMask'
SPLITS = ('train', 'validation', 'test')
MASK_ENCODINGS = ('channel0', 'single_channel', 'paletted', 'palette')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


@dataclasses.dataclass(frozen=True)
class FolderFormat:
  """Where images and masks live under a data folder, and how masks encode classes.

  mask_encoding: 'channel0' (class in channel 0, other colour channels 0: the
  lab), 'single_channel' (a greyscale 8- or 16-bit class-id PNG), 'paletted'
  (a mode-P PNG whose palette index is the class), or 'palette' (class i
  drawn in colour `palette[i]`). `label_map` ((raw, training id) pairs) maps
  every raw id found to a training id; a raw id it lacks is an error. Mask
  pixels equal to `ignore_label` (when >= 0) are kept and excluded from loss
  and metrics.
  """
  image_subdir: str = IMAGE_DIR
  mask_subdir: str = MASK_DIR
  mask_encoding: str = 'channel0'
  palette: tuple[tuple[int, int, int], ...] = ()
  num_classes: int = 23
  ignore_label: int = -1
  label_map: tuple[tuple[int, int], ...] = ()

  @classmethod
  def from_config(cls, data) -> 'FolderFormat':
    """The format described by a `config.data` (palette and label map files read)."""
    palette = (read_palette_file(data.palette_file)[1] if data.get('palette_file')
               else data.palette)
    label_map = (read_label_map_file(data.label_map_file, data.ignore_label)
                 if data.get('label_map_file') else data.get('label_map', ()))
    fmt = cls(data.image_subdir, data.mask_subdir, data.mask_encoding,
              tuple(tuple(int(v) for v in c) for c in palette), data.num_classes,
              data.ignore_label, tuple((int(r), int(t)) for r, t in label_map))
    fmt.check()
    return fmt

  def check(self) -> None:
    if self.mask_encoding not in MASK_ENCODINGS:
      raise DataError(f'config.data.mask_encoding must be one of {MASK_ENCODINGS}, '
                      f'got {self.mask_encoding!r}')
    if self.label_map:
      raws = [r for r, _ in self.label_map]
      if len(set(raws)) != len(raws) or not all(0 <= r < 65536 for r in raws):
        raise DataError('config.data.label_map must map each raw id in 0..65535 once')
      bad = [t for _, t in self.label_map if not (0 <= t < self.num_classes or
                                                   t == self.ignore_label >= 0)]
      if bad:
        raise DataError(f'config.data.label_map maps to {bad[0]}, neither a class '
                        f'(0..{self.num_classes - 1}) nor config.data.ignore_label='
                        f'{self.ignore_label}')
    if self.mask_encoding == 'palette':
      # Through a label map the palette's indices are raw ids, of any count.
      if ((len(self.palette) != self.num_classes and not self.label_map)
          or any(len(c) != 3 for c in self.palette) or not self.palette):
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
  return match_pairs(image_dir, mask_dir, skip_unmatched)


def match_pairs(image_dir: epath.Path, mask_dir: epath.Path,
                skip_unmatched: bool = False) -> list[Pair]:
  """The images of `image_dir` with the masks of the same name in `mask_dir`, by name."""
  images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
  masks = {p.stem: p for p in mask_dir.glob('*.png')}
  if not images:
    raise DataError(f'no image files ({", ".join(IMAGE_SUFFIXES)}) in {image_dir}')
  lonely_images = sorted(images.keys() - masks.keys())
  lonely_masks = sorted(masks.keys() - images.keys())
  if lonely_images or lonely_masks:
    problems = [f'frame {images[n]} has no mask {mask_dir / (n + ".png")}' for n in lonely_images]
    problems += [f'mask {masks[n]} has no frame in {image_dir}' for n in lonely_masks]
    message = (f'{len(problems)} unmatched file(s) in {image_dir.parent}:\n  '
               + '\n  '.join(problems[:20]))
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


def image_rgb(image: Image.Image, path: epath.Path) -> np.ndarray:
  """uint8 (H, W, 3) of a decoded image: RGB, RGBA, 8- or 16-bit grey, paletted.

  PIL's own conversion of 16-bit grey to RGB clips every value above 255 (a
  white image), so those are scaled to 8 bits here instead.
  """
  if image.mode.startswith('I'):  # 'I;16', 'I;16B', 'I': 16-bit grey PNG
    grey = np.asarray(image).astype(np.int64)
    if grey.min() < 0 or grey.max() > 65535:
      raise DataError(f'cannot read image {path}: {image.mode} values outside 0..65535')
    return np.repeat(((grey * 255 + 32767) // 65535).astype(np.uint8)[..., None], 3, -1)
  if image.mode == 'F':
    raise DataError(f'cannot read image {path}: floating-point pixels (mode F); save it as '
                    f'8- or 16-bit PNG or JPEG')
  return np.asarray(image.convert('RGB'))


def read_pair(pair: Pair, fmt: FolderFormat = LAB_FORMAT) -> tuple[np.ndarray, np.ndarray]:
  """Returns (image uint8 HxWx3, mask uint8 HxW of class indices), validated."""
  image = image_rgb(open_image(pair.image_path), pair.image_path)
  mask = decode_mask(open_image(pair.mask_path), fmt, pair.mask_path)
  if image.shape[:2] != mask.shape[:2]:
    raise DataError(f'size mismatch: {pair.image_path} is {image.shape[1]}x{image.shape[0]}, '
                    f'{pair.mask_path} is {mask.shape[1]}x{mask.shape[0]}')
  return image, mask


def decode_mask(mask_file: Image.Image, fmt: FolderFormat, path: epath.Path) -> np.ndarray:
  """Class indices (H, W) uint8 of a mask file in `fmt.mask_encoding`, validated."""
  if fmt.mask_encoding == 'paletted' and mask_file.mode != 'P':
    raise DataError(f'{path}: expected a paletted PNG (mode P: the palette index is the '
                    f'class; mask_encoding=paletted), got mode {mask_file.mode}')
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
                      f'config.data.palette' + ('_file' if fmt.palette else ''))
    mask = order[pos]
  else:
    mask = np.asarray(mask_file)
  if fmt.mask_encoding == 'single_channel':
    if mask.ndim != 2:
      raise DataError(f'{path}: expected a single-channel mask (mask_encoding=single_channel), '
                      f'got shape {mask.shape}')
  elif fmt.mask_encoding == 'channel0' and mask.ndim == 3:
    if mask.shape[-1] >= 3 and (mask[..., 1:3] != 0).any():
      raise DataError(f'{path}: channels 1 and 2 must be 0 in the lab mask '
                      f'encoding (class index in channel 0)')
    mask = mask[..., 0]
  if fmt.label_map:
    mask = _map_labels(mask, fmt.label_map, path)
  bad = (mask >= fmt.num_classes) & (mask != fmt.ignore_label)
  if bad.any():
    raise DataError(f'{path}: class index {int(mask[bad].max())} >= '
                    f'num_classes={fmt.num_classes}')
  return mask.astype(np.uint8)


def _map_labels(raw: np.ndarray, label_map: tuple[tuple[int, int], ...],
                path: epath.Path) -> np.ndarray:
  table = np.full(65536, -1, np.int32)
  for r, t in label_map:
    table[r] = t
  mapped = table[raw.astype(np.int64)]
  if (mapped < 0).any():
    unknown = sorted(set(np.unique(raw[mapped < 0]).tolist()))
    raise DataError(f'{path}: raw id(s) {unknown[:10]} not in config.data.label_map '
                    f'(map each to a class or to the ignore label)')
  return mapped


def read_palette_file(path: str) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
  """(class names, colours) of a `name,r,g,b` CSV file (a header line is allowed)."""
  file = epath.Path(path)
  if not file.is_file():
    raise DataError(f'config.data.palette_file={path!r} is not a file')
  names, colours = [], []
  for number, line in enumerate(file.read_text().splitlines(), 1):
    fields = [f.strip() for f in line.split(',')]
    if not line.strip() or line.lstrip().startswith('#'):
      continue
    try:
      if len(fields) != 4:
        raise ValueError
      rgb = tuple(int(v) for v in fields[1:])
    except ValueError:
      if number == 1 and not names:
        continue  # a header such as name,r,g,b
      raise DataError(f'{path}:{number}: expected "name,r,g,b", got {line!r}') from None
    if not all(0 <= v <= 255 for v in rgb):
      raise DataError(f'{path}:{number}: colour values must be 0..255, got {rgb}')
    names.append(fields[0])
    colours.append(rgb)
  if not names:
    raise DataError(f'{path} holds no "name,r,g,b" line')
  if len(set(colours)) != len(colours):
    raise DataError(f'{path} repeats a colour')
  return tuple(names), tuple(colours)


def read_label_map_file(path: str, ignore_label: int) -> tuple[tuple[int, int], ...]:
  """(raw id, training id) pairs of a file of `RAW TRAIN` lines; TRAIN may be 'ignore'."""
  file = epath.Path(path)
  if not file.is_file():
    raise DataError(f'config.data.label_map_file={path!r} is not a file')
  pairs = []
  for number, line in enumerate(file.read_text().splitlines(), 1):
    fields = line.split('#', 1)[0].replace(',', ' ').split()
    if not fields:
      continue
    if len(fields) != 2 or not fields[0].isdigit() or not (
        fields[1].isdigit() or fields[1] == 'ignore'):
      raise DataError(f'{path}:{number}: expected "RAW_ID TRAIN_ID" (TRAIN_ID a class or '
                      f'"ignore"), got {line!r}')
    if fields[1] == 'ignore' and ignore_label < 0:
      raise DataError(f'{path}:{number}: maps to ignore, but config.data.ignore_label is '
                      f'not set (e.g. 255)')
    pairs.append((int(fields[0]), ignore_label if fields[1] == 'ignore' else int(fields[1])))
  return tuple(pairs)


def resolve_classes(config):
  """`config` with its class list complete: from `data.palette_file` when given
  without a label map (palette, names, count), else `class_names=()` named
  'class_0', 'class_1', ... (through a label map the file's rows are raw ids).

  ConfigError when the names and `num_classes` disagree.
  """
  data = config.data
  from_file = data.get('palette_file') and not (data.label_map or data.label_map_file)
  if not from_file and len(data.class_names) == data.num_classes:
    return config
  config = config.copy_and_resolve_references()
  if from_file:
    names, colours = read_palette_file(data.palette_file)
    config.data.palette, config.data.class_names = colours, names
    config.data.num_classes = len(names)
  elif not data.class_names:
    config.data.class_names = tuple(f'class_{i}' for i in range(data.num_classes))
  else:
    raise ConfigError(f'config.data.class_names has {len(data.class_names)} names but '
                      f'config.data.num_classes={data.num_classes}: give one name per class, '
                      f'or class_names=() for generic names')
  return config


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
