"""Training and evaluation loop: jit-compiled, data-parallel over all devices.

`train_and_evaluate(config, workdir)` is the whole run: load data, build the
model and optimizer, resume from the newest checkpoint in the workdir if any,
train with periodic evaluation, logging and checkpoints.
"""

import functools
import json
import math
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions
from etils import epath
from flax.training import train_state

from unet_jax import checkpointing, input_pipeline, losses, metrics, models, optim, parallel


class TrainState(train_state.TrainState):
  batch_stats: Any


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return max(1, int(math.ceil(config.num_epochs * steps_per_epoch)))


def create_train_state(config: ml_collections.ConfigDict, model: models.UNet,
                       tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
  """Initialises parameters (float32) and optimizer state."""
  h, w = config.data.image_size
  model.check_input_shape((1, h, w, 3))
  variables = jax.jit(model.init)(rng, jnp.zeros((1, h, w, 3), jnp.uint8))
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables.get('batch_stats', {}))


def _pixel_mask(config: ml_collections.ConfigDict, batch: dict[str, jax.Array]) -> jax.Array:
  valid = batch.get('valid', jnp.ones(batch['label'].shape[0], bool))
  return metrics.valid_pixels(batch['label'], valid, config.data.num_classes,
                              config.data.ignore_label)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, config: ml_collections.ConfigDict,
               dropout_key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch; returns summed (not averaged) metrics."""
  mask = _pixel_mask(config, batch)
  # Dropout noise is a function of (seed, step) alone: resuming replays it exactly.
  rng = jax.random.fold_in(dropout_key, state.step)

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    logits, updates = state.apply_fn(variables, batch['image'], train=True,
                                     rngs={'dropout': rng}, mutable=['batch_stats'])
    loss_sum, weight_sum = losses.cross_entropy(logits, batch['label'], mask,
                                                config.loss.class_weights)
    return loss_sum / jnp.maximum(weight_sum, 1e-12), (logits, updates, loss_sum, weight_sum)

  grads, (logits, updates, loss_sum, weight_sum) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads,
                                batch_stats=updates.get('batch_stats', state.batch_stats))
  correct = jnp.sum((jnp.argmax(logits, -1) == batch['label']) & mask)
  return state, {'loss_sum': loss_sum, 'weight_sum': weight_sum,
                 'correct': correct.astype(jnp.float32),
                 'pixels': jnp.sum(mask).astype(jnp.float32),
                 'grad_norm': optax.tree.norm(grads)}


def eval_step(state: TrainState, batch: dict[str, jax.Array], *,
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Confusion matrix and loss sums of one (possibly padded) batch."""
  mask = _pixel_mask(config, batch)
  logits = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                          batch['image'], train=False)
  loss_sum, weight_sum = losses.cross_entropy(logits, batch['label'], mask,
                                              config.loss.class_weights)
  cm = metrics.confusion_matrix(batch['label'], jnp.argmax(logits, -1), mask,
                                config.data.num_classes)
  return {'confusion': cm, 'loss_sum': loss_sum, 'weight_sum': weight_sum}


def evaluate(eval_fn, state: TrainState, data: input_pipeline.SplitData,
             config: ml_collections.ConfigDict, sharding) -> tuple[dict[str, float], np.ndarray]:
  """Scores `data` once; returns (summary, confusion matrix)."""
  outputs = [eval_fn(state, parallel.to_global(batch, sharding))
             for batch in input_pipeline.eval_batches(
                 data, config.eval_batch_size, jax.process_index(), jax.process_count())]
  # Summed on the host in int64: exact however large the split.
  cm = sum(np.asarray(o['confusion'], np.int64) for o in outputs)
  loss = sum(float(o['loss_sum']) for o in outputs) / max(
      sum(float(o['weight_sum']) for o in outputs), 1e-12)
  summary = metrics.summarize(cm, config.data.class_names)
  summary['loss'] = loss
  return summary, cm


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  if jax.process_index() == 0:
    (epath.Path(workdir) / 'config.json').write_text(config.to_json_best_effort(indent=2))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its newest checkpoint.

  Returns the final evaluation summary (also written to
  `workdir/eval_results.json`).
  """
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  _write_config(config, workdir)
  parallel.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.eval_batch_size, 'eval_batch_size')
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)

  data_dir = input_pipeline.resolve_data_dir(config.data, workdir)
  train_data = input_pipeline.load_split(data_dir, 'train', config.data)
  eval_data = input_pipeline.load_split(data_dir, 'validation', config.data)
  batches = input_pipeline.TrainBatches(train_data, config.batch_size, config.seed,
                                        config.data.hflip, jax.process_index(),
                                        jax.process_count())
  total_steps = num_train_steps(config, batches.steps_per_epoch)
  logging.info('%d train / %d validation frames; %d steps of %d (%.1f epochs)',
               len(train_data), len(eval_data), total_steps, config.batch_size,
               total_steps / batches.steps_per_epoch)

  model = models.create_model(config.model, config.data.num_classes)
  tx, schedule = optim.create_optimizer(config.optimizer, total_steps)
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  mesh = parallel.create_mesh()
  state = jax.device_put(create_train_state(config, model, tx, init_key),
                         parallel.replicated(mesh))
  parameter_overview.log_parameter_overview(state.params)

  manager = checkpointing.create_manager(workdir, config)
  restored = checkpointing.restore_latest(manager, state, config)
  if restored is not None:
    state = restored
    logging.info('Resuming training from step %d', int(state.step))
  start_step = int(state.step)

  data_sharding = parallel.batch_sharding(mesh)
  p_train_step = jax.jit(
      functools.partial(train_step, config=config, dropout_key=dropout_key),
      in_shardings=(parallel.replicated(mesh), data_sharding),
      out_shardings=parallel.replicated(mesh), donate_argnums=0)
  p_eval_step = jax.jit(functools.partial(eval_step, config=config),
                        in_shardings=(parallel.replicated(mesh), data_sharding),
                        out_shardings=parallel.replicated(mesh))

  report = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer)
  hooks = [report] if jax.process_index() == 0 else []
  summary: dict[str, float] = {}
  train_sums = None
  device_batches = parallel.prefetch_to_device(batches.iterate(start_step), data_sharding,
                                               config.prefetch_batches)
  with metric_writers.ensure_flushes(writer):
    for step in range(start_step + 1, total_steps + 1):
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        state, step_metrics = p_train_step(state, next(device_batches))
      # Sums stay on device; the host only reads them every log_every_steps.
      train_sums = step_metrics if train_sums is None else jax.tree.map(
          jnp.add, train_sums, step_metrics)
      for hook in hooks:
        hook(step)
      is_last = step == total_steps
      if step % config.log_every_steps == 0 or is_last:
        sums = jax.device_get(train_sums)
        train_sums = None
        writer.write_scalars(step, {
            'train/loss': sums['loss_sum'] / max(sums['weight_sum'], 1e-12),
            'train/pixel_accuracy': sums['correct'] / max(sums['pixels'], 1),
            'train/grad_norm': float(sums['grad_norm']),  # summed over the window
            'train/learning_rate': float(schedule(step - 1)),
        })
      if step % config.eval_every_steps == 0 or is_last:
        with report.timed('eval'):
          summary, _ = evaluate(p_eval_step, state, eval_data, config, data_sharding)
        writer.write_scalars(step, {f'eval/{k}': v for k, v in summary.items()
                                    if not math.isnan(v)})
      if step % config.checkpoint_every_steps == 0 or is_last:
        with report.timed('checkpoint'):
          checkpointing.save(manager, step, state, config)
  manager.wait_until_finished()
  if not summary:  # nothing left to train: score the restored state.
    summary, _ = evaluate(p_eval_step, state, eval_data, config, data_sharding)
  if jax.process_index() == 0:
    (epath.Path(workdir) / 'eval_results.json').write_text(json.dumps(
        {'step': int(state.step), **summary}, indent=2))
  logging.info('Final validation: mean IoU %.4f, pixel accuracy %.4f (step %d)',
               summary['mean_iou'], summary['pixel_accuracy'], int(state.step))
  return summary
