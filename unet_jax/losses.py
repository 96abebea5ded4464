"""Pixel-wise losses, computed in float32 whatever the compute dtype."""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from unet_jax.errors import ConfigError


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                  class_weights: Sequence[float] | None = None) -> tuple[jax.Array, jax.Array]:
  """Weighted softmax cross-entropy summed over the pixels where `mask` is set.

  Returns (sum of weighted losses, sum of weights); their ratio is the mean
  loss, and summing both over devices or batches keeps it exact. With class
  weights this is the weighted mean of PyTorch's `CrossEntropyLoss(weight=)`.
  """
  logits = logits.astype(jnp.float32)
  safe_labels = jnp.where(mask, labels, 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, safe_labels)
  weights = mask.astype(jnp.float32)
  if class_weights:
    if len(class_weights) != logits.shape[-1]:
      raise ConfigError(f'loss.class_weights has {len(class_weights)} entries for '
                       f'{logits.shape[-1]} classes')
    weights = weights * jnp.asarray(class_weights, jnp.float32)[safe_labels]
  return jnp.sum(losses * weights), jnp.sum(weights)


def soft_dice(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """1 - mean soft Dice over the classes present in the batch's labels (scalar, float32).

  Every class present counts equally however few its pixels, which pulls
  rare classes (poles, signs, pedestrians) up where cross-entropy is led by
  road and sky. Classes absent from the batch are left out of the mean.
  """
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  weights = mask.astype(jnp.float32)[..., None]
  onehot = jax.nn.one_hot(jnp.where(mask, labels, 0), logits.shape[-1]) * weights
  probs = probs * weights
  axes = tuple(range(logits.ndim - 1))
  overlap = jnp.sum(probs * onehot, axes)
  truth = jnp.sum(onehot, axes)
  dice = (2 * overlap + 1.0) / (jnp.sum(probs, axes) + truth + 1.0)
  present = truth > 0
  return 1.0 - jnp.sum(jnp.where(present, dice, 0.0)) / jnp.maximum(jnp.sum(present), 1)


CLASS_WEIGHTINGS = ('none', 'median_frequency')
MAX_CLASS_WEIGHT = 10.0


def median_frequency_weights(masks: np.ndarray, num_classes: int) -> np.ndarray:
  """Median-frequency class weights (Eigen & Fergus, 2015) of (N, H, W) label maps.

  freq(c) = pixels of class c / pixels of the images where c appears;
  weight(c) = median over present classes of freq / freq(c), capped at
  MAX_CLASS_WEIGHT so that a class seen in a handful of pixels cannot
  dominate the loss. Classes absent from `masks` get weight 1.
  """
  masks = masks.reshape(len(masks), -1)
  pixels = np.stack([np.bincount(m, minlength=num_classes)[:num_classes] for m in masks])
  present = pixels > 0
  area = (present * masks.shape[1]).sum(0)
  freq = np.where(area > 0, pixels.sum(0) / np.maximum(area, 1), 0.0)
  seen = freq > 0
  weights = np.ones(num_classes)
  weights[seen] = np.minimum(np.median(freq[seen]) / freq[seen], MAX_CLASS_WEIGHT)
  return weights
