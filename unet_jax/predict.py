"""`--mode=predict`: segment image files and write masks, colours, overlays, panels.

For each input image NAME it writes, under the output folder:
  masks/NAME.png     class indices in the lab encoding (RGBA, class in channel 0)
  color/NAME.png     the mask in the fixed CARLA palette
  overlay/NAME.png   the coloured mask blended over the image
  panels/NAME.png    image | truth (when a mask of the same name exists) | prediction

Images of another size than the model's are handled by `size_mode`:
  'resize': resized to the training size, the prediction resized back (nearest);
  'pad':    padded (edge pixels) to a size every evaluated input scale accepts
            (a multiple of 2**depth at scale 1), the prediction cropped back.
Predictions average the views the config's evaluation averages (`eval_hflip`,
`eval_input_scales`), so a mask shows what the reported scores measured.
"""

import math
import time
from typing import Callable, Sequence

import ml_collections
import numpy as np
from absl import logging
from etils import epath
from PIL import Image

from unet_jax import models, restore, views, visualize
from unet_jax.data import reading, resize
from unet_jax.errors import DataError

SIZE_MODES = ('resize', 'pad')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


def expand_inputs(spec: str) -> list[epath.Path]:
  """A file, a folder (its images) or a glob pattern -> sorted image paths."""
  path = epath.Path(spec)
  if path.is_dir():
    found = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
  elif path.exists():
    found = [path]
  else:  # a pattern in the last path component, local or gs://
    found = list(path.parent.glob(path.name)) if path.parent.is_dir() else []
  if not found:
    raise DataError(f'--input={spec!r} matches no image file')
  return sorted(found)


def _truth_path(image_path: epath.Path, mask_dir: str) -> epath.Path | None:
  if mask_dir:
    candidate = epath.Path(mask_dir) / image_path.name
  elif image_path.parent.name == reading.IMAGE_DIR:  # lab layout: sibling CameraMask/
    candidate = image_path.parent.parent / reading.MASK_DIR / image_path.name
  else:
    return None
  return candidate if candidate.exists() else None


def to_model_input(image: np.ndarray, train_size: Sequence[int], size_mode: str,
                   multiple: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
  """The image the model sees, and the map from its prediction back to `image`'s size."""
  h, w = image.shape[:2]
  if size_mode == 'resize':
    th, tw = train_size
    resized = resize.image(image, (th, tw))
    back = lambda p: np.asarray(Image.fromarray(p.astype(np.uint8)).resize(
        (w, h), Image.Resampling.NEAREST))
    return resized, back
  if size_mode == 'pad':
    ph, pw = -h % multiple, -w % multiple
    padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode='edge')
    return padded, lambda p: p[:h, :w]
  raise DataError(f'--size_mode must be one of {SIZE_MODES}, got {size_mode!r}')


def read_image(path: epath.Path) -> np.ndarray:
  """RGB uint8 (H, W, 3) from an RGB, RGBA or greyscale file."""
  return reading.image_rgb(reading.open_image(path), path)


def _write_png(path: epath.Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('wb') as f:
    Image.fromarray(array).save(f, format='PNG')


def write_outputs(out: epath.Path, name: str, image: np.ndarray, pred: np.ndarray,
                  truth: np.ndarray | None, class_names: Sequence[str]) -> None:
  n = len(class_names)
  _write_png(out / 'masks' / f'{name}.png', reading.encode_mask(pred))
  _write_png(out / 'color' / f'{name}.png', visualize.colorize(pred, n))
  _write_png(out / 'overlay' / f'{name}.png', visualize.overlay(image, pred, n))
  _write_png(out / 'panels' / f'{name}.png',
             visualize.panel(image, pred, class_names, truth=truth))


def predict_files(config: ml_collections.ConfigDict, workdir: str, input_spec: str,
                  output_dir: str, *, checkpoint: str = 'latest', size_mode: str = 'resize',
                  batch_size: int = 8, mask_dir: str = '') -> dict[str, int]:
  """Segments every input image; returns counts of written and failed images."""
  paths = expand_inputs(input_spec)
  state, step = restore.restore_state(config, workdir, checkpoint)
  # The same views (mirror, input scales) as --mode=eval scores.
  classes = views.make_predict_fn(config)
  predict = lambda images: np.asarray(classes(state, images))
  multiple = math.lcm(*(m.input_multiple for m in views.eval_models(config) or
                        [models.create_model(config.model, config.data.num_classes)]))
  out = epath.Path(output_dir)
  failed: list[str] = []
  written = 0
  start = time.time()
  logging.info('Predicting %d images with %s checkpoint (step %d), size_mode=%s, into %s',
               len(paths), checkpoint, step, size_mode, out)
  for lo in range(0, len(paths), batch_size):
    items = []
    for path in paths[lo:lo + batch_size]:
      try:
        image = read_image(path)
        truth_path = _truth_path(path, mask_dir)
        truth = None
        if truth_path is not None:
          truth = reading.read_pair(reading.Pair(path.stem, path, truth_path),
                                     reading.FolderFormat.from_config(config.data))[1]
          if truth.shape != image.shape[:2]:
            truth = None
        items.append((path, image, truth,
                      *to_model_input(image, config.data.image_size, size_mode, multiple)))
      except DataError as e:
        logging.error('Skipping %s: %s', path, e)
        failed.append(str(path))
    # Images of one shape share a forward pass (always so with size_mode=resize).
    by_shape: dict[tuple, list] = {}
    for item in items:
      by_shape.setdefault(item[3].shape, []).append(item)
    for group in by_shape.values():
      preds = predict(np.stack([g[3] for g in group]))
      for (path, image, truth, _, back), pred in zip(group, preds):
        write_outputs(out, path.stem, image, back(pred), truth, config.data.class_names)
        written += 1
    done = min(lo + batch_size, len(paths))
    rate = done / max(time.time() - start, 1e-9)
    logging.info('[%d/%d] %.1f images/s, ETA %.0f s', done, len(paths), rate,
                 (len(paths) - done) / rate)
  if failed:
    logging.error('%d of %d images could not be read: %s', len(failed), len(paths),
                  ', '.join(failed))
  return {'written': written, 'failed': len(failed)}
