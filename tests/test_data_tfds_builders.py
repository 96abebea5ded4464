"""The TFDS builder: preparing a folder once, splits by clip, bad input, `tfds build`."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SHARED_CARLA, subprocess_env, tiny_config
from unet_jax import errors
from unet_jax.classes import CARLA
from unet_jax.data import loading, reading, tfds_builders


def _data_config(tmp_path, **overrides):
  data = tiny_config().data
  data.source, data.tfds_data_dir = 'folder', str(tmp_path / 'tfds')
  data.update(overrides)
  return data


def _write_clips(root, clips=6, frames=3, size=(8, 12)):
  """`clips` clips of `frames` frames; the mask's class is the clip number."""
  rng = np.random.default_rng(0)
  for c in range(clips):
    for f in range(frames):
      image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
      reading.write_pair(root, f'{c * 100 + f:06d}', image, np.full(size, c, np.uint8))


def _examples(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


def test_builder_prepares_once_and_splits_by_clip(tmp_path):
  _write_clips(tmp_path / 'src', clips=12)
  data = _data_config(tmp_path, val_fraction=0.3, test_fraction=0.2)
  builder = loading.prepared_builder(data, tmp_path / 'src')
  assert isinstance(builder, tfds_builders.CarlaLab)
  examples = {s: _examples(builder, s) for s in ('train', 'validation', 'test')}
  assert sum(len(e) for e in examples.values()) == 36
  clips = {s: {ex['clip'].decode() for ex in e} for s, e in examples.items()}
  assert all(clips.values()) and not (clips['train'] & clips['validation'])
  assert not (clips['train'] & clips['test']) and not (clips['validation'] & clips['test'])
  ex = examples['train'][0]
  assert ex['image'].shape == (8, 12, 3) and ex['image'].dtype == np.uint8
  assert ex['mask'].shape == (8, 12, 1) and ex['mask'].dtype == np.uint8
  assert int(ex['name']) // 100 == ex['mask'][0, 0, 0]  # masks stay with their frames
  # A second run finds the prepared data instead of building again.
  prepared = sorted(p for p in (tmp_path / 'tfds').rglob('*') if p.is_file())
  mtimes = [p.stat().st_mtime_ns for p in prepared]
  again = loading.prepared_builder(data, tmp_path / 'src')
  assert again.info.full_name == builder.info.full_name
  assert [p.stat().st_mtime_ns for p in prepared] == mtimes


def test_a_frame_keeps_its_split_when_clips_are_added(tmp_path):
  _write_clips(tmp_path / 'src', clips=10)
  data = _data_config(tmp_path, val_fraction=0.4)
  split_of = lambda b: {ex['name'].decode(): s for s in ('train', 'validation')
                        for ex in _examples(b, s)}
  before = split_of(loading.prepared_builder(data, tmp_path / 'src'))
  rng = np.random.default_rng(1)
  for f in range(3):  # a new clip: the source changed, so a new build
    reading.write_pair(tmp_path / 'src', f'{5000 + f:06d}',
                        rng.integers(0, 256, (8, 12, 3), dtype=np.uint8),
                        np.zeros((8, 12), np.uint8))
  after = split_of(loading.prepared_builder(data, tmp_path / 'src'))
  assert len(after) == len(before) + 3
  assert all(after[name] == split for name, split in before.items())


def _break(root, fault):
  image_path, mask_path = root / 'CameraRGB' / '000101.png', root / 'CameraMask' / '000101.png'
  if fault == 'no_folder':
    return root / 'nowhere'
  if fault == 'no_mask':
    mask_path.unlink()
  elif fault == 'no_image':
    image_path.unlink()
  elif fault == 'truncated':
    image_path.write_bytes(image_path.read_bytes()[:40])
  elif fault == 'size':
    Image.fromarray(np.zeros((9, 12, 4), np.uint8)).save(mask_path)
  elif fault == 'class':
    Image.fromarray(np.full((8, 12, 4), [30, 0, 0, 255], np.uint8)).save(mask_path)
  elif fault == 'channels':
    Image.fromarray(np.full((8, 12, 4), [1, 7, 0, 255], np.uint8)).save(mask_path)
  return root


@pytest.mark.parametrize('fault, message', [
    ('no_folder', 'nowhere does not exist'),
    ('no_mask', 'CameraRGB/000101.png has no mask'),
    ('no_image', 'CameraMask/000101.png has no frame'),
    ('truncated', 'cannot read image .*CameraRGB/000101.png'),
    ('size', 'size mismatch: .*CameraRGB/000101.png is 12x8, .*CameraMask/000101.png is 12x9'),
    ('class', 'CameraMask/000101.png: class index 30 >= num_classes=23'),
    ('channels', 'CameraMask/000101.png: channels 1 and 2 must be 0'),
])
def test_bad_input_is_named_and_leaves_no_dataset(tmp_path, fault, message):
  _write_clips(tmp_path / 'src')
  source = _break(tmp_path / 'src', fault)
  data = _data_config(tmp_path)
  with pytest.raises(errors.DataError, match=message):
    loading.load_split(source, 'train', data)
  # Nothing a later run could load: no prepared version folder, no dataset_info.
  assert not list((tmp_path / 'tfds').rglob('dataset_info.json'))
  if fault == 'no_folder':
    return
  # Asked to, the build skips the bad pair, counts it in the log, and keeps the rest.
  data.skip_bad_pairs = True
  builder = loading.prepared_builder(data, source)
  names = {ex['name'].decode() for s in builder.info.splits for ex in _examples(builder, s)}
  assert len(names) == 17 and '000101' not in names


def test_generic_folder_with_palette_masks_and_a_split_file(tmp_path):
  rng = np.random.default_rng(0)
  palette = ((0, 0, 0), (255, 0, 0), (10, 200, 30))
  (tmp_path / 'src' / 'img').mkdir(parents=True)
  (tmp_path / 'src' / 'ann').mkdir()
  lines = []
  for i, name in enumerate(['street_a', 'street_b', 'park_c', 'park_d']):
    mask = np.full((16, 16), i % 3, np.uint8)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        tmp_path / 'src' / 'img' / f'{name}.jpg')
    Image.fromarray(np.array(palette, np.uint8)[mask]).save(tmp_path / 'src' / 'ann' / f'{name}.png')
    lines.append(f'{name} {"validation" if name.startswith("park") else "train"}')
  (tmp_path / 'splits.txt').write_text('\n'.join(lines))
  data = _data_config(tmp_path, image_subdir='img', mask_subdir='ann', mask_encoding='palette',
                      palette=palette, num_classes=3, split_file=str(tmp_path / 'splits.txt'),
                      class_names=('void', 'red', 'green'), image_size=(8, 8))
  val = loading.load_split(tmp_path / 'src', 'validation', data)
  assert sorted(val.names) == ['park_c', 'park_d']
  assert {int(val.masks[val.names.index(n)][0, 0]) for n in val.names} == {2, 0}
  assert val.images.shape == (2, 8, 8, 3)


@pytest.mark.slow
def test_tfds_build_command_prepares_the_lab_builder(tmp_path):
  _write_clips(tmp_path / 'src', clips=12)
  result = subprocess.run(
      [sys.executable, '-m', 'unet_jax.data.build', 'carla_lab',
       f'--manual_dir={tmp_path / "src"}', f'--data_dir={tmp_path / "tfds"}'],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  info = list((tmp_path / 'tfds' / 'carla_lab' / 'default').rglob('dataset_info.json'))
  assert len(info) == 1
  builder = tfds_builders.CarlaLab(data_dir=str(tmp_path / 'tfds'))
  sizes = {s: i.num_examples for s, i in builder.info.splits.items()}
  assert set(sizes) == {'train', 'validation'} and sum(sizes.values()) == 36


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CARLA.is_dir(), reason=f'real CARLA frames not at {SHARED_CARLA}')
def test_real_carla_frames_build_split_and_load(tmp_path):
  data = _data_config(tmp_path, image_size=(96, 128))
  root = SHARED_CARLA / '320x240'
  builder = loading.prepared_builder(data, root)
  sizes = {s: i.num_examples for s, i in builder.info.splits.items()}
  assert sizes['train'] + sizes['validation'] == 699 and sizes['validation'] >= 50
  val = loading.load_split(root, 'validation', data)
  assert val.images.shape == (sizes['validation'], 96, 128, 3) and val.masks.max() < 23
  road = np.mean(val.masks == CARLA['Road'])
  assert 0.2 < road < 0.6  # the data README: road is about a third of the pixels
  clips = {s: {ex['clip'] for ex in _examples(builder, s)} for s in sizes}
  assert not clips['train'] & clips['validation']


@pytest.mark.slow
def test_runs_starting_together_share_one_build(tmp_path):
  # e.g. a sweep with --parallel: every run prepares the same dataset at once.
  _write_clips(tmp_path / 'src', clips=12)
  child = (
      'import sys; sys.path.insert(0, "tests"); from test_data_tfds_builders import _data_config; '
      'import pathlib; from unet_jax.data import loading; '
      f'root = pathlib.Path({str(tmp_path)!r}); '
      'b = loading.prepared_builder(_data_config(root), root / "src"); '
      'print(sum(s.num_examples for s in b.info.splits.values()))')
  procs = [subprocess.Popen([sys.executable, '-c', child], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for _ in range(3)]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
    assert out.split()[-1] == '36'
  assert len(list((tmp_path / 'tfds').rglob('dataset_info.json'))) == 1
