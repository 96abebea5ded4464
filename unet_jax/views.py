"""Test-time views of a trained model: input scales, mirror images, their average.

One set of weights runs at any `model.input_scale` (no parameter depends on
it), so evaluation and prediction may average several views of each frame:
the model at each of `config.eval_input_scales`, each also mirrored with
`config.eval_hflip`. Training uses `models_at_scales` for
`config.train_input_scales`.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from unet_jax import models
from unet_jax.errors import ConfigError
from unet_jax.train_state import TrainState


def models_at_scales(config: ml_collections.ConfigDict, scales: Sequence[float],
                     option: str) -> tuple[models.UNet, ...]:
  """The configured model once per entry of `scales`, run at that `input_scale`.

  `input_scale` changes no parameter shape, so one set of weights runs at every
  scale. `option` names the config field in errors.
  """
  scaled = []
  h, w = config.data.image_size
  for scale in scales:
    model_config = config.model.copy_and_resolve_references()
    model_config.input_scale = float(scale)
    model = models.create_model(model_config, config.data.num_classes)
    try:
      model.check_input_shape((1, h, w, 3))
    except ConfigError as e:
      raise ConfigError(f'{option} entry {scale} does not fit {h}x{w} frames: {e}') from None
    scaled.append(model)
  return tuple(scaled)


def eval_models(config: ml_collections.ConfigDict) -> tuple[models.UNet, ...]:
  """One model per `config.eval_input_scales` entry (test-time multi-scale); may be empty."""
  return models_at_scales(config, config.eval_input_scales, 'config.eval_input_scales')


def eval_logits(state: TrainState, images: jax.Array, hflip: bool,
                scaled_models: Sequence[models.UNet] = ()) -> jax.Array:
  """Eval-mode logits; with several views, log of the mean of their softmaxes.

  The views: the state's model (or each of `scaled_models`, see `eval_models`),
  each also mirrored with `hflip`. Driving scenes are left-right symmetric
  (training flips them too), so a mirror view is a second, partly independent
  guess; other input scales see thin objects at other sizes. Each view costs
  one forward pass (mirroring on carla_plus_wide: +0.1 mIoU points).
  """
  applies = [m.apply for m in scaled_models] or [state.apply_fn]
  views = []
  for apply in applies:
    views.append(apply(state.variables, images, train=False))
    if hflip:
      views.append(apply(state.variables, images[:, :, ::-1], train=False)[:, :, ::-1])
  if len(views) == 1:
    return views[0]
  # log(mean(softmax)), without underflow to log(0).
  log_probs = jnp.stack([jax.nn.log_softmax(v.astype(jnp.float32)) for v in views])
  return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(float(len(views)))


@jax.jit
def predict_classes(state: TrainState, images: jax.Array) -> jax.Array:
  """int32 (N, H, W) class maps of uint8 (N, H, W, 3) images, in eval mode."""
  logits = state.apply_fn(state.variables, images, train=False)
  return jnp.argmax(logits, -1).astype(jnp.int32)


def make_predict_fn(config: ml_collections.ConfigDict
                    ) -> Callable[[TrainState, jax.Array], jax.Array]:
  """`predict_classes` with the views evaluation averages (`eval_hflip`, `eval_input_scales`)."""
  scaled_models = eval_models(config)

  @jax.jit
  def classes(state: TrainState, images: jax.Array) -> jax.Array:
    logits = eval_logits(state, images, config.eval_hflip, scaled_models)
    return jnp.argmax(logits, -1).astype(jnp.int32)
  return classes
