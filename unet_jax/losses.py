"""Pixel-wise losses, computed in float32 whatever the compute dtype."""

from typing import Sequence

import jax
import jax.numpy as jnp
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
