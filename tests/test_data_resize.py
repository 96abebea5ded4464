"""numpy resizing against tf.image.resize, the reference it replaces."""

import numpy as np
import pytest
import tensorflow as tf

from unet_jax.data import resize

SIZES = [(96, 128), (120, 160), (144, 192), (77, 101), (300, 400), (60, 500)]


def _tf_image(image, size):
  shrinking = image.shape[0] >= size[0] and image.shape[1] >= size[1]
  resized = tf.image.resize(image, size, 'area' if shrinking else 'bilinear')
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def _smooth_frame(rng, h, w):
  """A camera-like frame: smooth gradients plus noise (uniform noise alone hides errors)."""
  y, x = np.mgrid[:h, :w]
  base = np.stack([y * 255 / h, x * 255 / w, (x + y) * 127 / (h + w)], -1)
  return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('size', SIZES)
def test_masks_match_tensorflow_exactly(size):
  labels = np.random.default_rng(0).integers(0, 23, (240, 320), dtype=np.uint8)
  expected = tf.image.resize(labels[..., None], size, 'nearest')[..., 0].numpy()
  np.testing.assert_array_equal(resize.mask(labels, size), expected)


@pytest.mark.parametrize('size', SIZES)
def test_frames_match_tensorflow(size):
  rng = np.random.default_rng(1)
  for frame in (_smooth_frame(rng, 240, 320), rng.integers(0, 256, (240, 320, 3), np.uint8)):
    ours, reference = resize.image(frame, size), _tf_image(frame, size)
    assert ours.shape == (*size, 3) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - reference)
    whole_ratio = 240 % size[0] == 0 and 320 % size[1] == 0 or 240 < size[0]
    if whole_ratio:  # integer shrink factors and all bilinear growth: the same arithmetic
      np.testing.assert_array_equal(ours, reference)
    else:  # float64 sums against TensorFlow's float32: off by one, rarely
      assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3


def test_same_size_is_the_frame_itself():
  frame = np.zeros((8, 12, 3), np.uint8)
  assert resize.image(frame, (8, 12)) is frame
