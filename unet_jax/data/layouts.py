"""Where a dataset's frames lie on disk: the layouts public segmentation datasets use.

`config.data.layout` picks one (no code change for a new dataset):

  folder         one image folder and one mask folder under data_dir
                 (`image_subdir`, `mask_subdir`: the lab's CameraRGB/ + CameraMask/);
                 splits drawn by clip, or given by `split_file`.
  split_folders  one image folder and one mask folder per split under data_dir,
                 in either common naming (found by looking):
                   images/<split>/  + annotations/<split>/
                   <split>/         + <split>annot/
                 or given as `image_dir_pattern` / `mask_dir_pattern` with '{split}'.
                 Split folders may be named train|training, validation|val|valid,
                 test|testing; images and masks pair up by file name (stem).
  list_files     a text file per split (`list_files.train`, `.validation`, `.test`)
                 of `IMAGE_PATH MASK_PATH` lines; relative paths are relative to
                 data_dir (or the list file's folder when data_dir is empty);
                 `path_prefix_map='OLD=NEW'` rewrites absolute paths written on
                 another machine.
"""

import dataclasses
import os

import ml_collections
from etils import epath

from unet_jax.data import reading
from unet_jax.errors import DataError

LAYOUTS = ('folder', 'split_folders', 'list_files')
SPLIT_ALIASES = {'train': ('train', 'training'), 'validation': ('validation', 'val', 'valid'),
                 'test': ('test', 'testing')}
FOLDER_NAMINGS = (('images/{split}', 'annotations/{split}'), ('{split}', '{split}annot'))


@dataclasses.dataclass(frozen=True)
class Layout:
  """How to find the image/mask pairs of each split (see the module docstring)."""
  kind: str = 'folder'
  image_dir_pattern: str = ''
  mask_dir_pattern: str = ''
  list_files: tuple[tuple[str, str], ...] = ()  # (split, path) of the list_files layout
  path_prefix_map: str = ''

  @classmethod
  def from_config(cls, data: ml_collections.ConfigDict) -> 'Layout':
    lists = tuple((s, str(data.list_files[s])) for s in reading.SPLITS
                  if data.list_files.get(s))
    layout = cls(data.layout, data.image_dir_pattern, data.mask_dir_pattern, lists,
                 data.path_prefix_map)
    layout.check()
    return layout

  def check(self) -> None:
    if self.kind not in LAYOUTS:
      raise DataError(f'config.data.layout must be one of {LAYOUTS}, got {self.kind!r}')
    if bool(self.image_dir_pattern) != bool(self.mask_dir_pattern) or any(
        p and '{split}' not in p for p in (self.image_dir_pattern, self.mask_dir_pattern)):
      raise DataError('config.data.image_dir_pattern and mask_dir_pattern go together, each '
                      "with '{split}' in it, e.g. 'leftImg8bit/{split}' and 'gtFine/{split}'")
    if self.kind == 'list_files' and not any(s == 'train' for s, _ in self.list_files):
      raise DataError('config.data.layout=list_files needs config.data.list_files.train '
                      '(and .validation, .test as you have them)')
    if self.path_prefix_map and self.path_prefix_map.count('=') != 1:
      raise DataError(f"config.data.path_prefix_map must be 'OLD=NEW', got "
                      f'{self.path_prefix_map!r}')

  @property
  def has_splits(self) -> bool:
    """Whether the splits come with the data (else they are drawn by clip)."""
    return self.kind != 'folder'


def split_folders(root: epath.Path, layout: Layout) -> dict[str, tuple[epath.Path, epath.Path]]:
  """{split: (image folder, mask folder)} of the split_folders layout under `root`."""
  if not root.is_dir():
    raise DataError(f'data directory {root} does not exist or is not a directory')
  namings = ([(layout.image_dir_pattern, layout.mask_dir_pattern)] if layout.image_dir_pattern
             else FOLDER_NAMINGS)
  for image_pattern, mask_pattern in namings:
    found = {}
    for split, aliases in SPLIT_ALIASES.items():
      for alias in aliases:
        images, masks = (root / p.format(split=alias) for p in (image_pattern, mask_pattern))
        if images.is_dir() and masks.is_dir():
          found[split] = (images, masks)
          break
        if images.is_dir() != masks.is_dir():
          have, lack = (images, masks) if images.is_dir() else (masks, images)
          raise DataError(f'{have} has no matching folder {lack} (layout split_folders, '
                          f'{image_pattern} + {mask_pattern})')
    if found:
      if 'train' not in found:
        raise DataError(f'{root}: split folders {sorted(found)} but no training split '
                        f'({" or ".join(a for a in SPLIT_ALIASES["train"])})')
      return found
  tried = '; '.join(f'{i}/ + {m}/' for i, m in namings)
  raise DataError(f'{root} has no split folders (layout split_folders looked for {tried}, '
                  f'split names {", ".join(a for v in SPLIT_ALIASES.values() for a in v)})')


def read_list_file(path: str, base: epath.Path | None, prefix_map: str) -> list[reading.Pair]:
  """The pairs of one `IMAGE MASK` list file, paths resolved and checked to exist."""
  list_path = epath.Path(path)
  if not list_path.is_file():
    raise DataError(f'list file {path} does not exist')
  old, new = prefix_map.split('=') if prefix_map else ('', '')
  base = base or list_path.parent
  pairs, missing = [], []
  for number, line in enumerate(list_path.read_text().splitlines(), 1):
    line = line.split('#', 1)[0].strip()
    if not line:
      continue
    fields = line.split()
    if len(fields) != 2:
      raise DataError(f'{path}:{number}: expected "IMAGE_PATH MASK_PATH", got {line!r}')
    resolved = []
    for field in fields:
      if old and field.startswith(old):
        field = new + field[len(old):]
      resolved.append(epath.Path(field) if os.path.isabs(field) or '://' in field
                      else base / field)
    image, mask = resolved
    missing += [f'{p} (line {number})' for p in resolved if not p.is_file()]
    pairs.append(reading.Pair(image.stem, image, mask))
  if missing:
    hint = (' (absolute paths from another machine? set config.data.path_prefix_map=OLD=NEW)'
            if any(os.path.isabs(f.split()[0]) for f in missing) else '')
    raise DataError(f'{path} names {len(missing)} missing file(s){hint}: '
                    + ', '.join(missing[:5]))
  if not pairs:
    raise DataError(f'list file {path} names no pair')
  names = [p.name for p in pairs]
  if len(set(names)) != len(names):
    # Frame names key the prepared records; keep them unique within a split.
    pairs = [dataclasses.replace(p, name=f'{i:06d}_{p.name}') for i, p in enumerate(pairs)]
  return pairs


def pairs_by_split(root: epath.Path | None, layout: Layout, fmt: reading.FolderFormat,
                   skip_unmatched: bool = False) -> dict[str, list[reading.Pair]]:
  """{split: pairs} for the layouts that come split (split_folders, list_files)."""
  if layout.kind == 'split_folders':
    return {split: reading.match_pairs(images, masks, skip_unmatched)
            for split, (images, masks) in split_folders(root, layout).items()}
  if layout.kind == 'list_files':
    return {split: read_list_file(path, root, layout.path_prefix_map)
            for split, path in layout.list_files}
  raise ValueError(f'layout {layout.kind!r} is split by clip or split file, not by folders')


def split_pairs(root: epath.Path, layout: Layout, fmt: reading.FolderFormat, *,
                split_file: str = '', val_fraction: float = 0.2, test_fraction: float = 0.0,
                split_seed: int = 0, clip_gap: int = 40, skip_unmatched: bool = False
                ) -> dict[str, list[tuple[reading.Pair, str]]]:
  """{split: [(pair, clip)]} of any layout: as it comes, by split file, or by clip.

  Every split named is non-empty (else a DataError saying what to change).
  """
  if layout.has_splits:
    splits = {s: [(p, p.name) for p in pairs]
              for s, pairs in pairs_by_split(root, layout, fmt, skip_unmatched).items()}
  else:
    pairs = reading.list_pairs(root, fmt, skip_unmatched=skip_unmatched)
    if split_file:
      clips = [p.name for p in pairs]  # the file decides: no clips to find
      chosen = reading.read_split_file(split_file)
      unknown = sorted(chosen.keys() - {p.name for p in pairs})
      if unknown:
        raise DataError(f'{split_file} names {len(unknown)} frame(s) not in {root}, '
                        f'e.g. {unknown[:3]}')
      split_of = [chosen.get(p.name) for p in pairs]
      wanted = sorted(set(chosen.values()))
    else:
      clips = reading.clip_ids([p.name for p in pairs], clip_gap)
      split_of = [reading.split_of_clip(c, val_fraction, test_fraction, split_seed)
                  for c in clips]
      wanted = ['train'] + [s for s, f in (('validation', val_fraction),
                                           ('test', test_fraction)) if f > 0]
    splits = {split: [(p, c) for p, c, s in zip(pairs, clips, split_of) if s == split]
              for split in wanted}
    for split, members in splits.items():
      if not members:
        raise DataError(f'split {split!r} of {root} would be empty ({len(set(clips))} '
                        f'clips): adjust config.data.val_fraction / test_fraction / '
                        f'split_seed or add clips')
  for split, members in splits.items():
    if not members:
      raise DataError(f'split {split!r} of {root} is empty')
  return splits
