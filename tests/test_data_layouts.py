"""Datasets as they come: layouts, label encodings, label maps, inspection."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, subprocess_env, tiny_config
from unet_jax import errors
from unet_jax.data import layouts, loading, reading

NUM_CLASSES = 3
PALETTE = ((0, 0, 0), (255, 0, 0), (10, 200, 30))
SPLIT_FRAMES = {'train': ['f0', 'f1', 'f2', 'f3'], 'validation': ['f4', 'f5'], 'test': ['f6']}


def _frames():
  """Per frame name: an RGB image of its own size and a mask of class ids 0..2."""
  rng = np.random.default_rng(0)
  frames = {}
  for i, name in enumerate(n for names in SPLIT_FRAMES.values() for n in names):
    h, w = 16 + 2 * i, 24 + 4 * i  # sizes differ between frames
    mask = rng.integers(0, NUM_CLASSES, (h, w)).astype(np.uint8)
    frames[name] = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mask)
  return frames


def _save_image(path, image):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)


def _write_split_folders(root, naming, encode=Image.fromarray, alias=None):
  alias = alias or {'train': 'train', 'validation': 'val', 'test': 'test'}
  frames = _frames()
  for split, names in SPLIT_FRAMES.items():
    image_dir, mask_dir = (p.format(split=alias[split]) for p in naming)
    for name in names:
      image, mask = frames[name]
      _save_image(root / image_dir / f'{name}.png', image)
      mask_path = root / mask_dir / f'{name}.png'
      mask_path.parent.mkdir(parents=True, exist_ok=True)
      encode(mask).save(mask_path)
  return root


def _data(tmp_path, **overrides):
  data = tiny_config().data
  data.source, data.tfds_data_dir = 'folder', str(tmp_path / 'tfds')
  data.num_classes, data.class_names = NUM_CLASSES, ('a', 'b', 'c')
  data.mask_encoding, data.image_size = 'single_channel', (16, 24)
  data.update(overrides)
  return data


def _load_all(data, root):
  return {split: loading.load_split(root, split, data)
          for split in ('train', 'validation', 'test')}


def _assert_same(loaded, reference):
  for split, ref in reference.items():
    assert sorted(loaded[split].names) == sorted(ref.names)
    order = [loaded[split].names.index(n) for n in ref.names]
    np.testing.assert_array_equal(loaded[split].images[order], ref.images)
    np.testing.assert_array_equal(loaded[split].masks[order], ref.masks)


def test_every_layout_gives_the_same_prepared_dataset(tmp_path):
  frames = _frames()
  # (a) one folder + a split file.
  flat = tmp_path / 'flat'
  lines = []
  for split, names in SPLIT_FRAMES.items():
    for name in names:
      _save_image(flat / 'img' / f'{name}.png', frames[name][0])
      _save_image(flat / 'ann' / f'{name}.png', frames[name][1])
      lines.append(f'{name} {split}')
  (tmp_path / 'splits.txt').write_text('\n'.join(lines))
  reference = _load_all(_data(tmp_path, image_subdir='img', mask_subdir='ann',
                              split_file=str(tmp_path / 'splits.txt')), flat)
  assert [len(reference[s]) for s in ('train', 'validation', 'test')] == [4, 2, 1]
  # (b) a folder per split, in both common namings and other split names.
  for i, (naming, alias) in enumerate((
      (('{split}', '{split}annot'), None),
      (('images/{split}', 'annotations/{split}'),
       {'train': 'training', 'validation': 'validation', 'test': 'testing'}))):
    root = _write_split_folders(tmp_path / f'split_folders_{i}', naming, alias=alias)
    _assert_same(_load_all(_data(tmp_path, layout='split_folders'), root), reference)
  # (c) list files: relative paths, then absolute ones written on another machine.
  for split, names in SPLIT_FRAMES.items():
    (tmp_path / f'{split}.txt').write_text(''.join(
        f'flat/img/{n}.png flat/ann/{n}.png\n' for n in names))
    (tmp_path / f'{split}_abs.txt').write_text(''.join(
        f'/old/machine/img/{n}.png /old/machine/ann/{n}.png\n' for n in names))
  relative = _data(tmp_path, layout='list_files', data_dir=str(tmp_path))
  for split in SPLIT_FRAMES:
    relative.list_files[split] = str(tmp_path / f'{split}.txt')
  _assert_same(_load_all(relative, tmp_path), reference)
  absolute = _data(tmp_path, layout='list_files', path_prefix_map=f'/old/machine={flat}')
  for split in SPLIT_FRAMES:
    absolute.list_files[split] = str(tmp_path / f'{split}_abs.txt')
  root = loading.resolve_data_dir(absolute, str(tmp_path))
  _assert_same(_load_all(absolute, root), reference)


def test_given_splits_do_not_warn_about_frame_numbers(tmp_path, caplog):
  root = _write_split_folders(tmp_path / 'src', ('{split}', '{split}annot'))
  _load_all(_data(tmp_path, layout='split_folders'), root)
  assert 'not all frame numbers' not in caplog.text


def _raw_ids(mask):
  return np.array([7, 26, 1000], np.uint16)[mask]  # 16-bit raw ids


@pytest.mark.parametrize('encoding', ['single8', 'single16_label_map', 'paletted', 'palette_csv',
                                      'channel0'])
def test_label_encodings_decode_to_the_same_training_ids(tmp_path, encoding):
  image, mask = _frames()['f0']
  mask = mask.copy()
  mask[0, :5] = 255  # void
  overrides = {'ignore_label': 255}
  if encoding == 'single8':
    stored = Image.fromarray(mask)
  elif encoding == 'single16_label_map':
    raw = np.where(mask == 255, 65535, _raw_ids(np.minimum(mask, 2))).astype(np.uint16)
    stored = Image.fromarray(raw)
    (tmp_path / 'labels.txt').write_text('7 0\n26 1\n1000 2\n65535 ignore\n')
    overrides['label_map_file'] = str(tmp_path / 'labels.txt')
  elif encoding == 'paletted':
    stored = Image.fromarray(mask, 'P')
    stored.putpalette([v for c in PALETTE for v in c] + [255, 255, 255] * 253)
    overrides['mask_encoding'] = 'paletted'
  elif encoding == 'palette_csv':
    colours = np.array(list(PALETTE) + [(9, 9, 9)] * 253, np.uint8)
    stored = Image.fromarray(colours[mask])
    (tmp_path / 'classes.csv').write_text('name,r,g,b\nroad,0,0,0\ncar,255,0,0\n'
                                          'tree,10,200,30\nvoid,9,9,9\n')
    overrides.update(mask_encoding='palette', palette_file=str(tmp_path / 'classes.csv'),
                     label_map=((0, 0), (1, 1), (2, 2), (3, 255)))
  else:
    stored = Image.fromarray(reading.encode_mask(mask), 'RGBA')
    overrides['mask_encoding'] = 'channel0'
  _save_image(tmp_path / 'img' / 'f0.jpg', image)
  (tmp_path / 'ann').mkdir()
  stored.save(tmp_path / 'ann' / 'f0.png')
  data = _data(tmp_path, image_subdir='img', mask_subdir='ann', **overrides)
  if encoding == 'palette_csv':
    assert reading.read_palette_file(data.palette_file)[0] == ('road', 'car', 'tree', 'void')
  fmt = reading.FolderFormat.from_config(data)
  [pair] = reading.list_pairs(tmp_path, fmt)
  got_image, got_mask = reading.read_pair(pair, fmt)
  np.testing.assert_array_equal(got_mask, mask)
  assert got_image.shape == image.shape


def test_class_names_come_from_the_palette_file_or_are_generic(tmp_path):
  config = tiny_config()
  (tmp_path / 'classes.csv').write_text('road,0,0,0\ncar,255,0,0\n')
  config.data.palette_file = str(tmp_path / 'classes.csv')
  resolved = reading.resolve_classes(config)
  assert resolved.data.class_names == ('road', 'car') and resolved.data.num_classes == 2
  assert resolved.data.palette == ((0, 0, 0), (255, 0, 0))
  config = tiny_config()
  config.data.num_classes, config.data.class_names = 4, ()
  assert reading.resolve_classes(config).data.class_names == tuple(
      f'class_{i}' for i in range(4))
  config.data.class_names = ('a', 'b')
  with pytest.raises(errors.ConfigError, match='class_names has 2 names but .*num_classes=4'):
    reading.resolve_classes(config)


def _decode(tmp_path, stored, **overrides):
  (tmp_path / 'img').mkdir(exist_ok=True)
  (tmp_path / 'ann').mkdir(exist_ok=True)
  _save_image(tmp_path / 'img' / 'x.png', np.zeros((4, 4, 3), np.uint8))
  stored.save(tmp_path / 'ann' / 'x.png')
  fmt = reading.FolderFormat.from_config(
      _data(tmp_path, image_subdir='img', mask_subdir='ann', **overrides))
  return reading.read_pair(reading.list_pairs(tmp_path, fmt)[0], fmt)


def test_bad_labels_are_named(tmp_path):
  raw = Image.fromarray(np.full((4, 4), 300, np.uint16))
  with pytest.raises(errors.DataError, match=r'ann/x.png: class index 300 >= num_classes=3'):
    _decode(tmp_path, raw)
  (tmp_path / 'map.txt').write_text('7 0\n')
  with pytest.raises(errors.DataError, match=r'ann/x.png: raw id\(s\) \[300\] not in '
                     'config.data.label_map'):
    _decode(tmp_path, raw, label_map_file=str(tmp_path / 'map.txt'))
  (tmp_path / 'c.csv').write_text('a,0,0,0\nb,1,1,1\nc,2,2,2\n')
  with pytest.raises(errors.DataError, match=r'colour \(5, 5, 5\) .* not in '
                     'config.data.palette_file'):
    _decode(tmp_path, Image.fromarray(np.full((4, 4, 3), 5, np.uint8)), mask_encoding='palette',
            palette_file=str(tmp_path / 'c.csv'))
  with pytest.raises(errors.DataError, match='expected a paletted PNG .*got mode L'):
    _decode(tmp_path, Image.fromarray(np.zeros((4, 4), np.uint8)), mask_encoding='paletted')
  with pytest.raises(errors.DataError, match='map.txt:1: maps to ignore, but .*ignore_label'):
    (tmp_path / 'map.txt').write_text('7 ignore\n')
    _decode(tmp_path, raw, label_map_file=str(tmp_path / 'map.txt'))


def test_bad_layouts_are_named_and_leave_no_dataset(tmp_path):
  root = _write_split_folders(tmp_path / 'src', ('{split}', '{split}annot'))
  (root / 'valannot' / 'f5.png').unlink()
  data = _data(tmp_path, layout='split_folders')
  with pytest.raises(errors.DataError, match=r'frame .*val/f5.png has no mask .*valannot/f5.png'):
    loading.load_split(root, 'train', data)
  assert not list((tmp_path / 'tfds').rglob('dataset_info.json'))
  with pytest.raises(errors.DataError, match='has no split folders'):
    layouts.split_folders(tmp_path / 'tfds', layouts.Layout('split_folders'))
  (tmp_path / 'train.txt').write_text('/elsewhere/a.png /elsewhere/b.png\n')
  with pytest.raises(errors.DataError, match='names 2 missing file.*path_prefix_map'):
    layouts.read_list_file(str(tmp_path / 'train.txt'), tmp_path, '')
  with pytest.raises(errors.DataError, match='layout must be one of'):
    layouts.Layout('per_split').check()


def test_training_on_split_folders_with_16_bit_ids_a_label_map_and_void(tmp_path):
  from unet_jax import train
  root = _write_split_folders(
      tmp_path / 'src', ('images/{split}', 'annotations/{split}'),
      encode=lambda m: Image.fromarray(np.where(np.arange(m.size).reshape(m.shape) % 7 == 0,
                                                65535, _raw_ids(m)).astype(np.uint16)))
  (tmp_path / 'labels.txt').write_text('7 0\n26 1\n1000 2\n65535 ignore\n')
  config = tiny_config()
  config.data = _data(tmp_path, layout='split_folders', data_dir=str(root), ignore_label=3,
                      label_map_file=str(tmp_path / 'labels.txt'), class_names=())
  config.batch_size = config.eval_batch_size = 4
  summary = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert np.isfinite(summary['mean_iou'])  # panels drew the void label (3 = num_classes)
  assert (tmp_path / 'run' / 'checkpoints' / '4').exists()


@pytest.mark.slow
def test_inspect_reports_splits_and_writes_a_picture(tmp_path):
  root = _write_split_folders(tmp_path / 'src', ('{split}', '{split}annot'))
  command = [sys.executable, '-m', 'unet_jax.data.inspect', '--config=configs/own_data.py',
             f'--config.data.data_dir={root}', '--config.data.num_classes=3',
             f'--output_dir={tmp_path / "out"}']
  result = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert '| frames | 4 | 2 | 1 |' in result.stdout
  assert {p.name for p in (tmp_path / 'out').iterdir()} == {'inspect.json', 'inspect.md',
                                                             'frames.png'}
  assert Image.open(tmp_path / 'out' / 'frames.png').size[1] > 100
  (root / 'testannot' / 'f6.png').write_bytes(b'not a png')
  result = subprocess.run(command[:-1] + [f'--output_dir={tmp_path / "out2"}'], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert 'error: cannot read image' in result.stderr and 'testannot/f6.png' in result.stderr
  assert not (tmp_path / 'out2').exists()
