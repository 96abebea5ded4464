"""Pixel-wise losses, computed in float32 whatever the compute dtype."""

from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.experimental import multihost_utils

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


def _mean_where(values: jax.Array, keep: jax.Array) -> jax.Array:
  """Mean of `values` where `keep` is set; 0 where nothing is kept."""
  return jnp.sum(jnp.where(keep, values, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


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
  return 1.0 - _mean_where(dice, truth > 0)


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


def _descending_order(errors: jax.Array) -> jax.Array:
  """Per row of (C, N) errors in [0, 1], the column indices by decreasing error.

  XLA:CPU sorts a single uint32 operand several times faster than a float
  key with an index payload, so each key packs the error, quantised to the
  bits the index leaves, above the index; errors closer than that step keep
  index order (the loss is exact for the values, the order of near-ties is
  arbitrary anyway). Past 2**24 pixels, an exact float sort.
  """
  n = errors.shape[1]
  index_bits = max(1, (n - 1).bit_length())
  error_bits = min(32 - index_bits, 24)  # 24: every level is exact in float32
  iota = jax.lax.broadcasted_iota(jnp.int32, errors.shape, 1)
  if error_bits < 8:
    return jax.lax.sort((-errors, iota), dimension=1, num_keys=1)[1]
  top = (1 << error_bits) - 1
  quantised = top - jnp.round(jnp.clip(errors, 0.0, 1.0) * top).astype(jnp.uint32)
  keys = (quantised << index_bits) | iota.astype(jnp.uint32)
  return (jnp.sort(keys, axis=1) & ((1 << index_bits) - 1)).astype(jnp.int32)


def lovasz_softmax(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Lovasz-softmax loss (Berman et al., 2018), per image, averaged (scalar, float32).

  For each image, the convex (Lovasz) extension of 1 - IoU of each class,
  evaluated at the softmax probabilities and averaged over the classes present
  in the image's labels: a surrogate of the IoU the validation reports, and
  for a one-hot prediction exactly 1 - that image's mean IoU. Per image, not
  over the whole batch, so that the sort stays within a device's shard of
  the batch (a sort across devices is very slow to partition); images with
  no valid pixel (batch padding) are left out of the mean.
  """
  batch = logits.shape[0]
  per_image = jax.vmap(_lovasz_softmax_image)(
      logits.reshape(batch, -1, logits.shape[-1]), labels.reshape(batch, -1),
      mask.reshape(batch, -1))
  return _mean_where(per_image, jnp.any(mask.reshape(batch, -1), axis=1))


def _lovasz_softmax_image(logits: jax.Array, labels: jax.Array, valid: jax.Array) -> jax.Array:
  """Lovasz-softmax of one image's (P, C) logits, (P,) labels and (P,) validity."""
  num_classes = logits.shape[-1]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).T
  truth = (labels[None, :] == jnp.arange(num_classes)[:, None]) & valid[None, :]
  truth = truth.astype(jnp.float32)
  # Masked pixels get error 0: they sort last and add nothing.
  errors = jnp.where(valid[None, :], jnp.abs(truth - probs), 0.0)
  order = _descending_order(jax.lax.stop_gradient(errors))
  errors_sorted = jnp.take_along_axis(errors, order, axis=1)
  truth_sorted = jnp.take_along_axis(truth, order, axis=1)
  total = jnp.sum(truth, axis=1, keepdims=True)
  intersection = total - jnp.cumsum(truth_sorted, axis=1)
  union = total + jnp.cumsum(1.0 - truth_sorted, axis=1)
  jaccard = 1.0 - intersection / union
  # The extension's weights: increments of the Jaccard loss along the sorted errors.
  weights = jnp.concatenate([jaccard[:, :1], jnp.diff(jaccard, axis=1)], axis=1)
  per_class = jnp.sum(errors_sorted * jax.lax.stop_gradient(weights), axis=1)
  return _mean_where(per_class, total[:, 0] > 0)


def with_class_weights(config: ml_collections.ConfigDict, train_masks: np.ndarray,
                       num_global: int) -> ml_collections.ConfigDict:
  """`config` with `loss.class_weights` computed as `loss.class_weighting` asks.

  `train_masks` are this process's training masks, `num_global` the frames of
  the whole split: every process weighs with the whole split's statistics.
  """
  weighting = config.loss.class_weighting
  if weighting not in CLASS_WEIGHTINGS:
    raise ConfigError(f'config.loss.class_weighting must be one of {CLASS_WEIGHTINGS}, '
                      f'got {weighting!r}')
  if weighting == 'none':
    return config
  if config.loss.class_weights:
    raise ConfigError('set either config.loss.class_weights or config.loss.class_weighting, '
                      'not both')
  masks = multihost_utils.process_allgather(train_masks[:num_global // jax.process_count()])
  weights = median_frequency_weights(np.asarray(masks).reshape(-1, *train_masks.shape[1:]),
                                     config.data.num_classes)
  logging.info('Class weights (%s): %s', weighting, ', '.join(
      f'{n} {w:.2f}' for n, w in zip(config.data.class_names, weights)))
  config = config.copy_and_resolve_references()
  config.loss.class_weights = tuple(float(w) for w in weights)
  return config
