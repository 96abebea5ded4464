"""Evaluation: the eval step and the loop over a split, used by training and --mode=eval.

`evaluate` scores a split exactly once (padding masked, every frame counted
once over all processes) as a confusion matrix summed in int64 on the host;
the views averaged per frame (mirror, input scales) are the config's.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from unet_jax import losses, metrics, models, parallel, train_step, views, visualize
from unet_jax.data import loading
from unet_jax.train_state import TrainState


def eval_step(state: TrainState, batch: dict[str, jax.Array], *,
              config: ml_collections.ConfigDict,
              scaled_models: Sequence[models.UNet] = ()) -> dict[str, jax.Array]:
  """Confusion matrix and loss sums of one (possibly padded) batch."""
  mask = train_step.pixel_mask(config, batch)
  logits = views.eval_logits(state, batch['image'], config.eval_hflip, scaled_models)
  loss_sum, weight_sum = losses.cross_entropy(logits, batch['label'], mask,
                                              config.loss.class_weights)
  cm = metrics.confusion_matrix(batch['label'], jnp.argmax(logits, -1), mask,
                                config.data.num_classes)
  return {'confusion': cm, 'loss_sum': loss_sum, 'weight_sum': weight_sum}


def make_eval_fn(config: ml_collections.ConfigDict, mesh):
  """`eval_step` compiled for a replicated state and a batch split over `mesh`."""
  # Built here, not in the step: a scale that does not fit fails before any work.
  scaled_models = views.eval_models(config)
  return jax.jit(functools.partial(eval_step, config=config, scaled_models=scaled_models),
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                 out_shardings=parallel.replicated(mesh))


def evaluate(eval_fn, state: TrainState, data: loading.SplitData,
             config: ml_collections.ConfigDict, sharding) -> tuple[dict[str, float], np.ndarray]:
  """Scores `data` once; returns (summary, confusion matrix)."""
  outputs = [eval_fn(state, parallel.to_global(batch, sharding))
             for batch in loading.eval_batches(data, config.eval_batch_size,
                                                      jax.process_count())]
  # Summed on the host in int64: exact however large the split.
  cm = sum(np.asarray(o['confusion'], np.int64) for o in outputs)
  loss = sum(float(o['loss_sum']) for o in outputs) / max(
      sum(float(o['weight_sum']) for o in outputs), 1e-12)
  summary = metrics.summarize(cm, config.data.class_names)
  summary['loss'] = loss
  return summary, cm


def predict_panels(state: TrainState, data: loading.SplitData,
                   config: ml_collections.ConfigDict, indices: np.ndarray) -> np.ndarray:
  """`image | truth | prediction` panels of `data[indices]`, stacked vertically."""
  images = data.images[indices]
  preds = np.asarray(views.predict_classes(state, images))
  return visualize.stack([visualize.panel(im, p, config.data.class_names, truth=t)
                          for im, p, t in zip(images, preds, data.masks[indices])])


