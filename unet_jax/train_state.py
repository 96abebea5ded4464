"""The train state (parameters, optimizer state, batch-norm statistics) and its creation."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from unet_jax import models


class TrainState(train_state.TrainState):
  batch_stats: Any

  @property
  def variables(self) -> dict[str, Any]:
    """What `apply_fn` takes: parameters and batch-norm statistics."""
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_train_state(config: ml_collections.ConfigDict, model: models.UNet,
                       tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
  """Initialises parameters (float32) and optimizer state."""
  h, w = config.data.image_size
  model.check_input_shape((1, h, w, 3))
  variables = jax.jit(model.init)(rng, jnp.zeros((1, h, w, 3), jnp.uint8))
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables.get('batch_stats', {}))
