"""Pictures of predictions: coloured masks, overlays and labelled panels.

Panels are `image | truth | prediction` tiles (truth only when known) with a
title above each tile and a legend of the classes present below. They are
plain uint8 arrays, so the same picture goes to PNG files and TensorBoard.
Mask values that are no class (an ignore label such as 255, or a void label
equal to the class count) are drawn in white and listed as 'ignored'.
"""

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unet_jax.classes import CARLA_PALETTE

TITLE_HEIGHT = 16
GAP = 4
LEGEND_ROW = 16
IGNORED_COLOUR = (255, 255, 255)


def palette(num_classes: int) -> np.ndarray:
  """(num_classes, 3) uint8: CARLA's colours, then fixed pseudo-random ones."""
  colours = np.array(CARLA_PALETTE[:num_classes], np.uint8).reshape(-1, 3)
  extra = num_classes - len(colours)
  if extra > 0:
    rng = np.random.default_rng(1234)
    colours = np.concatenate([colours, rng.integers(0, 256, (extra, 3), dtype=np.uint8)])
  return colours


def colorize(mask: np.ndarray, num_classes: int) -> np.ndarray:
  """Class-index mask (H, W) -> RGB (H, W, 3) in the fixed palette; no class: white."""
  colours = np.concatenate([palette(num_classes), np.array([IGNORED_COLOUR], np.uint8)])
  mask = np.asarray(mask)
  return colours[np.where((mask >= 0) & (mask < num_classes), mask, num_classes)]


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int,
            alpha: float = 0.5) -> np.ndarray:
  blended = (1 - alpha) * image.astype(np.float32) + alpha * colorize(mask, num_classes)
  return blended.round().astype(np.uint8)


def tile_origins(height: int, width: int, num_tiles: int) -> list[tuple[int, int]]:
  """(y, x) of the top-left pixel of each tile inside a panel."""
  return [(TITLE_HEIGHT, i * (width + GAP)) for i in range(num_tiles)]


def _font(size: int = 11):
  return ImageFont.load_default(size=size)


def panel(image: np.ndarray, prediction: np.ndarray | None, class_names: Sequence[str],
          truth: np.ndarray | None = None) -> np.ndarray:
  """`image | truth | prediction` with titles and a legend of present classes.

  Either mask may be None (not both): `image | truth` shows a dataset's frame.
  """
  n = len(class_names)
  masks = [m for m in (truth, prediction) if m is not None]
  h, w = masks[0].shape
  tiles = [('image', image)]
  if truth is not None:
    tiles.append(('truth', colorize(truth, n)))
  if prediction is not None:
    tiles.append(('prediction', colorize(prediction, n)))
  present = np.unique(np.concatenate([m.ravel() for m in masks]))
  per_row = max(1, (len(tiles) * (w + GAP)) // 110)
  legend_rows = -(-len(present) // per_row)
  total_w = len(tiles) * (w + GAP) - GAP
  canvas = Image.new('RGB', (total_w, TITLE_HEIGHT + h + GAP + legend_rows * LEGEND_ROW),
                     (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  font = _font()
  for (title, tile), (y, x) in zip(tiles, tile_origins(h, w, len(tiles))):
    canvas.paste(Image.fromarray(np.asarray(tile, np.uint8)), (x, y))
    draw.text((x + 2, 2), title, fill=(0, 0, 0), font=font)
  colours = palette(n)
  for i, c in enumerate(present):
    row, col = divmod(i, per_row)
    x, y = col * 110, TITLE_HEIGHT + h + GAP + row * LEGEND_ROW
    known = 0 <= c < n
    draw.rectangle([x + 2, y + 2, x + 12, y + 12],
                   fill=tuple(int(v) for v in colours[c]) if known else IGNORED_COLOUR,
                   outline=(0, 0, 0))
    draw.text((x + 16, y + 1), f'{c} {class_names[c]}' if known else f'{c} ignored',
              fill=(0, 0, 0), font=font)
  return np.asarray(canvas)


def stack(panels: Sequence[np.ndarray]) -> np.ndarray:
  """Panels one above the other (padded to the widest), e.g. for TensorBoard."""
  width = max(p.shape[1] for p in panels)
  rows = [np.pad(p, ((0, GAP), (0, width - p.shape[1]), (0, 0)), constant_values=255)
          for p in panels]
  return np.concatenate(rows)


def titled(picture: np.ndarray, title: str) -> np.ndarray:
  """`picture` with a line of text above it."""
  h, w = picture.shape[:2]
  canvas = Image.new('RGB', (w, TITLE_HEIGHT + h), (255, 255, 255))
  canvas.paste(Image.fromarray(np.asarray(picture, np.uint8)), (0, TITLE_HEIGHT))
  ImageDraw.Draw(canvas).text((2, 2), title, fill=(0, 0, 0), font=_font())
  return np.asarray(canvas)
