"""Frame and mask resizing in numpy, as `tf.image.resize` does it (no TensorFlow needed).

Frames shrink with an area (box) filter and grow bilinearly (half-pixel
centres, no antialiasing); masks use nearest neighbour, so no class is
invented. Masks and grown frames match TensorFlow exactly (the same float32
arithmetic); shrunk frames match exactly at whole-number ratios and to within
one grey level otherwise (TensorFlow sums in float32, this in float64, a few
pixels in ten thousand differ; tests/test_data_resize.py).
"""

from typing import Sequence

import numpy as np


def _area_weights(src: int, dst: int) -> np.ndarray:
  """(dst, src): output pixel i averages input [i * s, (i + 1) * s), s = src / dst."""
  scale = src / dst
  edges = np.arange(dst + 1) * scale
  lo, hi = edges[:-1, None], edges[1:, None]
  cells = np.arange(src)[None, :]
  overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0, None)
  return overlap / scale


def _bilinear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Half-pixel-centre bilinear interpolation in float32, in TensorFlow's order of operations."""
  def axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(src) / np.float32(dst)
    centre = (np.arange(dst, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centre)
    lower = np.clip(floor, 0, src - 1).astype(int)
    upper = np.clip(np.ceil(centre), 0, src - 1).astype(int)
    return lower, upper, (centre - floor).astype(np.float32)

  (y0, y1, fy), (x0, x1, fx) = axis(frame.shape[0], size[0]), axis(frame.shape[1], size[1])
  x = frame.astype(np.float32)
  fx, fy = fx[None, :, None], fy[:, None, None]
  above, below = x[y0], x[y1]
  top = above[:, x0] + (above[:, x1] - above[:, x0]) * fx
  bottom = below[:, x0] + (below[:, x1] - below[:, x0]) * fx
  return top + (bottom - top) * fy


def image(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """uint8 (H, W, C) -> uint8 `size`: area filter when shrinking (both axes), else bilinear."""
  (h, w), (th, tw) = frame.shape[:2], tuple(size)
  if (h, w) == (th, tw):
    return frame
  if h >= th and w >= tw:
    c = frame.shape[2]
    rows = _area_weights(h, th) @ frame.reshape(h, w * c).astype(np.float64)  # (th, W*C)
    cols = rows.reshape(th, w, c).transpose(1, 0, 2).reshape(w, th * c)
    out = (_area_weights(w, tw) @ cols).reshape(tw, th, c).transpose(1, 0, 2)
  else:
    out = _bilinear(frame, (th, tw))
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def nearest_indices(src: int, dst: int) -> np.ndarray:
  """Input index of each output index, as TensorFlow computes it (float32, half-pixel)."""
  scale = np.float32(src) / np.float32(dst)
  centre = (np.arange(dst, dtype=np.float32) + np.float32(0.5)) * scale
  return np.minimum(np.floor(centre).astype(int), src - 1)


def mask(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """(H, W) class indices -> `size`, nearest neighbour."""
  (h, w), (th, tw) = labels.shape[:2], tuple(size)
  return labels[nearest_indices(h, th)[:, None], nearest_indices(w, tw)[None, :]]
