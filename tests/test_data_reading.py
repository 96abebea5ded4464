"""The image/mask folder reader (lab layout and other encodings), splits, synthetic data."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_CARLA, tiny_config
from unet_jax import errors
from unet_jax.classes import CARLA
from unet_jax.data import reading, synthetic


def _write(root, name, image=None, mask=None, size=(8, 12)):
  h, w = size
  image = np.full((h, w, 3), 100, np.uint8) if image is None else image
  mask = np.full((h, w), CARLA['Road'], np.uint8) if mask is None else mask
  reading.write_pair(root, name, image, mask)


def test_written_pair_reads_back_in_the_lab_encoding(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
  mask = rng.integers(0, 23, (8, 12), dtype=np.uint8)
  _write(tmp_path, '000001', image, mask)
  raw = np.asarray(Image.open(tmp_path / 'CameraMask' / '000001.png'))
  assert raw.shape == (8, 12, 4) and (raw[..., 1:3] == 0).all() and (raw[..., 3] == 255).all()
  [pair] = reading.list_pairs(tmp_path)
  got_image, got_mask = reading.read_pair(pair)
  np.testing.assert_array_equal(got_image, image)
  np.testing.assert_array_equal(got_mask, mask)


def test_unmatched_files_are_named(tmp_path):
  _write(tmp_path, '000001')
  _write(tmp_path, '000002')
  (tmp_path / 'CameraMask' / '000002.png').unlink()
  (tmp_path / 'CameraRGB' / '000001.png').unlink()
  with pytest.raises(errors.DataError) as e:
    reading.list_pairs(tmp_path)
  assert 'CameraRGB/000002.png has no mask' in str(e.value)
  assert 'CameraMask/000001.png has no frame' in str(e.value)


@pytest.mark.parametrize('fault, message', [
    ('truncated', 'cannot read image .*CameraRGB/000001.png'),
    ('size', 'size mismatch'),
    ('class', r'class index 30 >= num_classes=23'),
    ('channels', 'channels 1 and 2 must be 0'),
])
def test_bad_pairs_get_a_clear_error(tmp_path, fault, message):
  _write(tmp_path, '000001')
  image_path = tmp_path / 'CameraRGB' / '000001.png'
  mask_path = tmp_path / 'CameraMask' / '000001.png'
  if fault == 'truncated':
    image_path.write_bytes(image_path.read_bytes()[:40])
  elif fault == 'size':
    _write(tmp_path, '000001', size=(8, 12))
    Image.fromarray(np.zeros((9, 12, 4), np.uint8)).save(mask_path)
  elif fault == 'class':
    Image.fromarray(np.full((8, 12, 4), [30, 0, 0, 255], np.uint8)).save(mask_path)
  elif fault == 'channels':
    Image.fromarray(np.full((8, 12, 4), [7, 7, 0, 255], np.uint8)).save(mask_path)
  [pair] = reading.list_pairs(tmp_path)
  with pytest.raises(errors.DataError, match=message):
    reading.read_pair(pair)


def test_clips_follow_frame_number_gaps():
  names = ['000100', '000101', '000103', '000200', '000139', '000143']
  assert reading.clip_ids(names, gap=40) == [
      '000100', '000100', '000100', '000200', '000100', '000100']


def test_split_of_a_frame_is_stable_when_other_clips_come_and_go():
  kw = dict(val_fraction=0.3, test_fraction=0.2)
  pairs = [reading.Pair(f'{c * 100 + i:06d}', None, None) for c in range(60) for i in range(4)]
  full = {p.name: s for s in reading.SPLITS for p in reading.split_pairs(pairs, s, **kw)}
  assert set(full.values()) == set(reading.SPLITS)
  # Drop every third clip and the last frame of every clip: nothing else moves.
  fewer = [p for p in pairs if int(p.name) // 100 % 3 and int(p.name) % 100 != 3]
  for split in reading.SPLITS:
    for p in reading.split_pairs(fewer, split, **kw):
      assert full[p.name] == split
  # Frames of one clip always share a split.
  by_clip = {}
  for name, split in full.items():
    by_clip.setdefault(int(name) // 100, set()).add(split)
  assert all(len(s) == 1 for s in by_clip.values())


def test_synthetic_generation_is_deterministic_and_complete(tmp_path, tiny_data_dir):
  s = tiny_config().data.synthetic
  again = synthetic.generate(tmp_path / 'again', num_clips=s.num_clips,
                             frames_per_clip=s.frames_per_clip, height=s.height,
                             width=s.width, seed=s.seed)
  pairs_a, pairs_b = reading.list_pairs(tiny_data_dir), reading.list_pairs(again)
  assert len(pairs_a) == s.num_clips * s.frames_per_clip
  for a, b in zip(pairs_a, pairs_b):
    assert a.image_path.read_bytes() == b.image_path.read_bytes()
    assert a.mask_path.read_bytes() == b.mask_path.read_bytes()
  # Scenes hold the main street classes and nothing outside CARLA's 23.
  masks = np.stack([reading.read_pair(p)[1] for p in pairs_a])
  present = set(np.unique(masks))
  assert {CARLA[c] for c in ('Sky', 'Road', 'SideWalk', 'RoadLine', 'Terrain')} <= present
  assert len(present) >= 8
  # One clip per frame-number block: the clip finder recovers the generator's clips.
  assert len(set(reading.clip_ids([p.name for p in pairs_a]))) == s.num_clips


def test_synthetic_refuses_a_folder_made_with_other_parameters(tmp_path, tiny_data_dir):
  marker = json.loads((tiny_data_dir / synthetic.MARKER).read_text())
  with pytest.raises(errors.DataError, match='holds synthetic data made with'):
    synthetic.generate(tiny_data_dir, **{**{k: marker[k] for k in marker if k != 'version'},
                                         'seed': marker['seed'] + 1})
  _write(tmp_path / 'partial', '000001')  # e.g. a generation killed half-way
  with pytest.raises(errors.DataError, match='not a complete synthetic dataset'):
    synthetic.generate(tmp_path / 'partial', num_clips=1, frames_per_clip=1, height=16,
                       width=16, seed=0)


@pytest.mark.skipif(not SHARED_CARLA.is_dir(), reason=f'real CARLA frames not at {SHARED_CARLA}')
def test_real_carla_lab_frames_read_and_split_by_clip():
  root = SHARED_CARLA / '320x240'
  pairs = reading.list_pairs(root)
  assert len(pairs) == 699
  splits = {s: reading.split_pairs(pairs, s, val_fraction=0.15, test_fraction=0.0)
            for s in ('train', 'validation')}
  assert len(splits['train']) + len(splits['validation']) == 699
  train_clips = set(reading.clip_ids([p.name for p in pairs]))
  assert 25 <= len(train_clips) <= 40  # the data README says about 31
  # Full-size originals read with the same code and hold the same labels.
  [big] = [p for p in reading.list_pairs(SHARED_CARLA / '640x480') if p.name == '000032']
  [small] = [p for p in pairs if p.name == '000032']
  big_mask = reading.read_pair(big)[1]
  small_mask = reading.read_pair(small)[1]
  assert big_mask.shape == (480, 640) and small_mask.shape == (240, 320)
  # Each downscaled label is one of the four original labels of its 2x2 block.
  blocks = [big_mask[dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
  assert np.any([small_mask == b for b in blocks], axis=0).all()


def test_other_mask_encodings_and_image_types(tmp_path):
  rng = np.random.default_rng(0)
  mask = rng.integers(0, 3, (8, 12), dtype=np.uint8)
  image = np.broadcast_to(np.arange(12, dtype=np.uint8)[None, :, None] * 20, (8, 12, 3))
  palette = ((0, 0, 0), (255, 0, 0), (10, 200, 30))
  for sub in ('images', 'grey', 'colour'):
    (tmp_path / sub).mkdir()
  Image.fromarray(image).save(tmp_path / 'images' / 'a.jpg', quality=95)
  Image.fromarray(mask).save(tmp_path / 'grey' / 'a.png')
  Image.fromarray(np.array(palette, np.uint8)[mask]).save(tmp_path / 'colour' / 'a.png')
  grey = reading.FolderFormat('images', 'grey', 'single_channel', num_classes=3)
  colour = reading.FolderFormat('images', 'colour', 'palette', palette, num_classes=3)
  for fmt in (grey, colour):
    [pair] = reading.list_pairs(tmp_path, fmt)
    got_image, got_mask = reading.read_pair(pair, fmt)
    np.testing.assert_array_equal(got_mask, mask)
    assert got_image.shape == (8, 12, 3) and np.abs(got_image.astype(int) - image).mean() < 8  # JPEG
  Image.fromarray(np.full((8, 12, 3), (1, 2, 3), np.uint8)).save(tmp_path / 'colour' / 'a.png')
  with pytest.raises(errors.DataError, match=r'colour/a.png: colour \(1, 2, 3\) .* not in'):
    reading.read_pair(reading.list_pairs(tmp_path, colour)[0], colour)
  with pytest.raises(errors.DataError, match='colour/a.png: expected a single-channel mask'):
    bad = reading.FolderFormat('images', 'colour', 'single_channel', num_classes=3)
    reading.read_pair(reading.list_pairs(tmp_path, bad)[0], bad)


def test_ignore_label_is_allowed_in_masks(tmp_path):
  _write(tmp_path, '000001', mask=np.full((8, 12), 255, np.uint8))
  [pair] = reading.list_pairs(tmp_path)
  with pytest.raises(errors.DataError, match='class index 255 >= num_classes=23'):
    reading.read_pair(pair)
  assert (reading.read_pair(pair, reading.FolderFormat(ignore_label=255))[1] == 255).all()


def test_split_file_is_read_and_checked(tmp_path):
  good = tmp_path / 'good.txt'
  good.write_text('# name split\na train\n\nb validation  # held out\n')
  assert reading.read_split_file(good) == {'a': 'train', 'b': 'validation'}
  bad = tmp_path / 'bad.txt'
  bad.write_text('a train\nb valid\n')
  with pytest.raises(errors.DataError, match='bad.txt:2: expected "NAME SPLIT"'):
    reading.read_split_file(bad)


@pytest.mark.parametrize('mode', ['grey16', 'grey8', 'rgba', 'paletted'])
def test_images_of_every_common_mode_read_as_their_8_bit_rgb(tmp_path, mode):
  rng = np.random.default_rng(0)
  grey = rng.integers(0, 65536, (8, 12)).astype(np.uint16)
  _write(tmp_path, '000001')
  path = tmp_path / 'CameraRGB' / '000001.png'
  if mode == 'grey16':
    Image.fromarray(grey).save(path)  # a 16-bit greyscale PNG ('I;16')
    expected = np.repeat(np.round(grey / 257.0).astype(np.uint8)[..., None], 3, -1)
  elif mode == 'grey8':
    Image.fromarray((grey >> 8).astype(np.uint8)).save(path)
    expected = np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, -1)
  elif mode == 'rgba':
    rgba = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
    Image.fromarray(rgba, 'RGBA').save(path)
    expected = rgba[..., :3]
  else:
    image = Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).quantize(16)
    image.save(path)
    expected = np.asarray(image.convert('RGB'))
  assert Image.open(path).mode == {'grey16': 'I;16', 'grey8': 'L', 'rgba': 'RGBA',
                                   'paletted': 'P'}[mode]
  [pair] = reading.list_pairs(tmp_path)
  image, _ = reading.read_pair(pair)
  assert image.dtype == np.uint8 and image.shape == (8, 12, 3)
  np.testing.assert_array_equal(image, expected)
  if mode == 'grey16':
    assert 0 < image.mean() < 255  # not the all-white image PIL's convert('RGB') makes


@pytest.mark.parametrize('ignore', [11, 255])
def test_panels_draw_an_ignore_label_in_the_truth(ignore):
  from unet_jax import visualize
  names = tuple(f'c{i}' for i in range(11))
  truth = np.full((8, 12), 3, np.uint8)
  truth[:4] = ignore
  panel = visualize.panel(np.zeros((8, 12, 3), np.uint8), np.full((8, 12), 2, np.uint8),
                          names, truth=truth)
  y, x = visualize.tile_origins(8, 12, 3)[1]
  np.testing.assert_array_equal(panel[y:y + 4, x:x + 12],
                                np.full((4, 12, 3), visualize.IGNORED_COLOUR, np.uint8))
  np.testing.assert_array_equal(visualize.colorize(truth, 11)[4:],
                                np.broadcast_to(visualize.palette(11)[3], (4, 12, 3)))
