"""The training step: one optimizer update on a global batch, and its metrics.

Free of TensorFlow and of the loop's I/O, so that it runs wherever JAX does
(benchmarks on an accelerator host that has no TensorFlow, for one).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from unet_jax import losses, metrics
from unet_jax.data import augmentation_on_device
from unet_jax.train_state import TrainState

NO_STEP = 2**31 - 1  # "no non-finite step yet" in a running minimum.


def pixel_mask(config: ml_collections.ConfigDict, batch: dict[str, jax.Array]) -> jax.Array:
  """The pixels that count in the loss and metrics: real frames, labels in range."""
  valid = batch.get('valid', jnp.ones(batch['label'].shape[0], bool))
  return metrics.valid_pixels(batch['label'], valid, config.data.num_classes,
                              config.data.ignore_label)


@struct.dataclass
class StepMetrics:
  """A train step's metrics as sums, so that windows of steps add up exactly."""
  loss_sum: jax.Array
  weight_sum: jax.Array
  correct: jax.Array
  pixels: jax.Array
  grad_norm: jax.Array  # summed over the steps whose update was applied
  nonfinite: jax.Array  # steps with a non-finite loss or gradient
  first_nonfinite_step: jax.Array  # the first such step; NO_STEP if none

  def merge(self, other: 'StepMetrics') -> 'StepMetrics':
    """The metrics of both windows: sums add, the first non-finite step is the smaller."""
    return StepMetrics(
        loss_sum=self.loss_sum + other.loss_sum, weight_sum=self.weight_sum + other.weight_sum,
        correct=self.correct + other.correct, pixels=self.pixels + other.pixels,
        grad_norm=self.grad_norm + other.grad_norm, nonfinite=self.nonfinite + other.nonfinite,
        first_nonfinite_step=jnp.minimum(self.first_nonfinite_step,
                                         other.first_nonfinite_step))


def train_step(state: TrainState, batch: dict[str, jax.Array], *, config: ml_collections.ConfigDict,
               dropout_key: jax.Array,
               apply_fn: Callable[..., Any] | None = None) -> tuple[TrainState, StepMetrics]:
  """One optimizer step on a global batch; returns summed (not averaged) metrics.

  `apply_fn` (default: the state's) runs the model, e.g. at another input scale.

  An update whose loss or gradient is not finite is never applied: the step
  counter advances but parameters and optimizer state stay as they were, and
  the metrics say which step it was (see `config.nonfinite`).
  """
  if augmentation_on_device.KEY in batch:  # frames at cache size, augmented here
    batch = augmentation_on_device.augment_batch(batch, config.data.augment,
                                                 config.data.image_size)
  mask = pixel_mask(config, batch)
  # Dropout noise is a function of (seed, step) alone: resuming replays it exactly.
  rng = jax.random.fold_in(dropout_key, state.step)

  apply = apply_fn or state.apply_fn

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    logits, updates = apply(variables, batch['image'], train=True, rngs={'dropout': rng},
                            mutable=['batch_stats'])
    loss_sum, weight_sum = losses.cross_entropy(logits, batch['label'], mask,
                                                config.loss.class_weights)
    loss = loss_sum / jnp.maximum(weight_sum, 1e-12)
    if config.loss.dice_weight:
      loss += config.loss.dice_weight * losses.soft_dice(logits, batch['label'], mask)
    if config.loss.lovasz_weight:
      loss += config.loss.lovasz_weight * losses.lovasz_softmax(logits, batch['label'], mask)
    return loss, (logits, updates, loss_sum, weight_sum)

  grads, (logits, updates, loss_sum, weight_sum) = jax.grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss_sum) & jnp.isfinite(grad_norm)
  new_state = state.apply_gradients(grads=grads,
                                    batch_stats=updates.get('batch_stats', state.batch_stats))
  new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state,
                           state.replace(step=new_state.step))
  correct = jnp.sum((jnp.argmax(logits, -1) == batch['label']) & mask)
  return new_state, StepMetrics(
      loss_sum=jnp.where(finite, loss_sum, 0.0), weight_sum=weight_sum,
      correct=correct.astype(jnp.float32), pixels=jnp.sum(mask).astype(jnp.float32),
      grad_norm=jnp.where(finite, grad_norm, 0.0), nonfinite=(~finite).astype(jnp.int32),
      first_nonfinite_step=jnp.where(finite, NO_STEP, state.step + 1).astype(jnp.int32))
