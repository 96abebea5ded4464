"""The training augmentation as jitted JAX, run inside the train step on the accelerator.

`config.data.augment.on_device=True` moves the zoom-and-crop, flip and colour
jitter of `augmentation.augment_example` (tf.data, on the host) here: the host
then only gathers uint8 frames at `augmentation.cache_size` and sends them
with one seed pair per frame, and the step augments them before the model
sees them. The distributions are those of the tf.data version (the random
streams differ): zoom s ~ U(lo, hi) then a uniformly placed crop of
`cache / s` resized to the training size (antialiased bilinear for the image,
nearest for the mask); a flip with probability 1/2; brightness + U(-b, b),
contrast x U(1 - c, 1 + c) about each channel's mean, saturation
x U(1 - s, 1 + s) in HSV, in that order, clipped to [0, 1] once at the end.

Each frame's randomness is a function of its seed pair alone (the process's
stream and the frame's position in it), so a resumed run replays it exactly.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections

KEY = 'augment_seed'  # (B, 2) uint32 per frame: (process stream, position in it)


def augment_batch(batch: dict[str, jax.Array], augment: ml_collections.ConfigDict,
                  size: Sequence[int]) -> dict[str, jax.Array]:
  """`batch` with frames at cache size and a seed pair each -> augmented at `size`."""
  images, labels = jax.vmap(
      lambda image, mask, seed: augment_example(image, mask, seed, augment, size))(
          batch['image'], batch['label'], batch[KEY])
  out = {k: v for k, v in batch.items() if k != KEY}
  out.update(image=images, label=labels)
  return out


def augment_example(image: jax.Array, mask: jax.Array, seed: jax.Array,
                    augment: ml_collections.ConfigDict,
                    size: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """uint8 (Hc, Wc, 3) and (Hc, Wc) at cache size -> uint8 image, int32 mask at `size`."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), seed[0]), seed[1])
  k_zoom, k_offset, k_flip, k_colour = jax.random.split(key, 4)
  size = tuple(size)
  x = image.astype(jnp.float32)
  mask = mask.astype(jnp.int32)
  lo, hi = augment.scale_range
  if image.shape[:2] != size:  # hi > 1: frames are cached at size * hi
    x, mask = _zoom_and_crop(x, mask, k_zoom, k_offset, lo, hi, size)
  if augment.hflip:
    flip = jax.random.bernoulli(k_flip)
    x = jnp.where(flip, x[:, ::-1], x)
    mask = jnp.where(flip, mask[:, ::-1], mask)
  x = x / 255.0
  if augment.brightness or augment.contrast or augment.saturation:
    x = _colour_jitter(x, k_colour, augment)
  image = jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)
  return image, mask


def _zoom_and_crop(x, mask, k_zoom, k_offset, lo, hi, size):
  cache = jnp.array(x.shape[:2], jnp.float32)
  out = jnp.array(size, jnp.float32)
  s = jax.random.uniform(k_zoom, (), minval=lo, maxval=hi)
  # At zoom s the frame is size * s; a size crop of it is a window of cache / s
  # of the cached frame (cache = size * hi), resized to size.
  window = jnp.round(cache / s)
  offset = jnp.floor(jax.random.uniform(k_offset, (2,)) * (cache - window + 1))
  scale = out / window
  x = jax.image.scale_and_translate(x, (*size, 3), (0, 1), scale, -offset * scale,
                                    method='linear', antialias=True)
  # Nearest neighbour with half-pixel centres, as tf.image.resize(..., 'nearest').
  rows, cols = (
      jnp.clip(o + jnp.floor((jnp.arange(n) + 0.5) * w / n), o, o + w - 1).astype(jnp.int32)
      for o, w, n in zip(offset, window, size))
  return x, mask[rows[:, None], cols[None, :]]


def _colour_jitter(x, key, augment):
  k_brightness, k_contrast, k_saturation = jax.random.split(key, 3)
  if augment.brightness:
    x = x + jax.random.uniform(k_brightness, (), minval=-augment.brightness,
                               maxval=augment.brightness)
  if augment.contrast:
    factor = jax.random.uniform(k_contrast, (), minval=1 - augment.contrast,
                                maxval=1 + augment.contrast)
    mean = jnp.mean(x, axis=(0, 1), keepdims=True)
    x = (x - mean) * factor + mean
  if augment.saturation:
    factor = jax.random.uniform(k_saturation, (), minval=1 - augment.saturation,
                                maxval=1 + augment.saturation)
    h, s, v = _rgb_to_hsv(x)
    x = _hsv_to_rgb(h, jnp.clip(s * factor, 0.0, 1.0), v)
  return x


def _rgb_to_hsv(x):
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = jnp.max(x, axis=-1)
  chroma = v - jnp.min(x, axis=-1)
  s = jnp.where(v > 0, chroma / jnp.where(v > 0, v, 1.0), 0.0)
  c = jnp.where(chroma > 0, chroma, 1.0)
  h = jnp.where(v == r, (g - b) / c, jnp.where(v == g, 2.0 + (b - r) / c, 4.0 + (r - g) / c))
  h = jnp.where(chroma > 0, (h / 6.0) % 1.0, 0.0)
  return h, s, v


def _hsv_to_rgb(h, s, v):
  k = (jnp.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
  return v[..., None] - (v * s)[..., None] * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
