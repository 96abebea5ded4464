"""Training and evaluation loop: jit-compiled, data-parallel over all devices.

`train_and_evaluate(config, workdir)` is the whole run: load data, build the
model and optimizer, resume from the newest checkpoint in the workdir if any
(else start from `config.init_from`'s weights when set), train with periodic
evaluation, logging and checkpoints.
"""

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions
from etils import epath
from jax.experimental import multihost_utils

from unet_jax import (checkpointing, inference, input_pipeline, losses, metrics, models, optim,
                      parallel, preemption, reports, views, visualize)
from unet_jax.errors import CheckpointError, ConfigError, DivergedError, WorkdirError
from unet_jax.train_state import TrainState, create_train_state


_NO_STEP = 2**31 - 1  # "no non-finite step yet" in a running minimum.
NONFINITE_POLICIES = ('stop', 'skip')


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return max(1, int(math.ceil(config.num_epochs * steps_per_epoch)))


def _pixel_mask(config: ml_collections.ConfigDict, batch: dict[str, jax.Array]) -> jax.Array:
  valid = batch.get('valid', jnp.ones(batch['label'].shape[0], bool))
  return metrics.valid_pixels(batch['label'], valid, config.data.num_classes,
                              config.data.ignore_label)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, config: ml_collections.ConfigDict,
               dropout_key: jax.Array,
               apply_fn: Callable[..., Any] | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch; returns summed (not averaged) metrics.

  `apply_fn` (default: the state's) runs the model, e.g. at another input scale.

  An update whose loss or gradient is not finite is never applied: the step
  counter advances but parameters and optimizer state stay as they were, and
  the metrics say which step it was (see `config.nonfinite`).
  """
  mask = _pixel_mask(config, batch)
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
  return new_state, {
      'loss_sum': jnp.where(finite, loss_sum, 0.0), 'weight_sum': weight_sum,
      'correct': correct.astype(jnp.float32), 'pixels': jnp.sum(mask).astype(jnp.float32),
      'grad_norm': jnp.where(finite, grad_norm, 0.0),
      'nonfinite': (~finite).astype(jnp.int32),
      'first_nonfinite_step': jnp.where(finite, _NO_STEP, state.step + 1).astype(jnp.int32),
  }


def _accumulate(total: dict[str, jax.Array] | None,
                step_metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
  if total is None:
    return step_metrics
  return {k: (jnp.minimum if k == 'first_nonfinite_step' else jnp.add)(total[k], v)
          for k, v in step_metrics.items()}


def train_scale_index(config: ml_collections.ConfigDict, step: int) -> int:
  """Which `config.train_input_scales` entry trains `step`: drawn from (seed, step) alone.

  A resumed run draws the same scales; every process draws the same one.
  """
  count = len(config.train_input_scales)
  return int(np.random.default_rng([config.seed, step]).integers(count)) if count > 1 else 0


def eval_step(state: TrainState, batch: dict[str, jax.Array], *,
              config: ml_collections.ConfigDict,
              scaled_models: Sequence[models.UNet] = ()) -> dict[str, jax.Array]:
  """Confusion matrix and loss sums of one (possibly padded) batch."""
  mask = _pixel_mask(config, batch)
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


def evaluate(eval_fn, state: TrainState, data: input_pipeline.SplitData,
             config: ml_collections.ConfigDict, sharding) -> tuple[dict[str, float], np.ndarray]:
  """Scores `data` once; returns (summary, confusion matrix)."""
  outputs = [eval_fn(state, parallel.to_global(batch, sharding))
             for batch in input_pipeline.eval_batches(data, config.eval_batch_size,
                                                      jax.process_count())]
  # Summed on the host in int64: exact however large the split.
  cm = sum(np.asarray(o['confusion'], np.int64) for o in outputs)
  loss = sum(float(o['loss_sum']) for o in outputs) / max(
      sum(float(o['weight_sum']) for o in outputs), 1e-12)
  summary = metrics.summarize(cm, config.data.class_names)
  summary['loss'] = loss
  return summary, cm


def predict_panels(state: TrainState, data: input_pipeline.SplitData,
                   config: ml_collections.ConfigDict, indices: np.ndarray) -> np.ndarray:
  """`image | truth | prediction` panels of `data[indices]`, stacked vertically."""
  images = data.images[indices]
  preds = np.asarray(views.predict_classes(state, images))
  return visualize.stack([visualize.panel(im, p, config.data.class_names, truth=t)
                          for im, p, t in zip(images, preds, data.masks[indices])])


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Creates the workdir, writes the config there; returns its absolute path."""
  workdir = checkpointing.absolute(workdir)
  try:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      (epath.Path(workdir) / 'config.json').write_text(config.to_json_best_effort(indent=2))
  except OSError as e:
    raise WorkdirError(f'cannot write to --workdir={workdir}: {e}') from e
  return workdir


def with_class_weights(config: ml_collections.ConfigDict,
                       train_data: input_pipeline.SplitData) -> ml_collections.ConfigDict:
  """`config` with `loss.class_weights` computed as `loss.class_weighting` asks."""
  weighting = config.loss.class_weighting
  if weighting not in losses.CLASS_WEIGHTINGS:
    raise ConfigError(f'config.loss.class_weighting must be one of {losses.CLASS_WEIGHTINGS}, '
                      f'got {weighting!r}')
  if weighting == 'none':
    return config
  if config.loss.class_weights:
    raise ConfigError('set either config.loss.class_weights or config.loss.class_weighting, '
                      'not both')
  # Every process weighs with the whole split's statistics, not its shard's.
  masks = multihost_utils.process_allgather(train_data.masks[:train_data.num_global
                                                             // jax.process_count()])
  weights = losses.median_frequency_weights(np.asarray(masks).reshape(
      -1, *train_data.masks.shape[1:]), config.data.num_classes)
  logging.info('Class weights (%s): %s', weighting, ', '.join(
      f'{n} {w:.2f}' for n, w in zip(config.data.class_names, weights)))
  config = config.copy_and_resolve_references()
  config.loss.class_weights = tuple(float(w) for w in weights)
  return config


def initialize_from(state: TrainState, config: ml_collections.ConfigDict) -> TrainState:
  """`state` with the parameters and batch-norm statistics of `config.init_from`'s checkpoint.

  The step, optimizer state and schedule start afresh: this starts a new run
  (a fine-tuning stage) from another run's weights, it does not resume it.
  """
  where = f'config.init_from={config.init_from!r}'
  try:
    source = inference.load_config(config.init_from)
  except WorkdirError as e:
    raise ConfigError(f'{where}: {e}') from None
  ours, theirs = checkpointing.run_record(config), checkpointing.run_record(source)
  diffs = [f'{k}: that run has {theirs[k]}, this config {v}'
           for k, v in ours.items() if k != 'optimizer' and theirs[k] != v]
  if diffs:
    raise ConfigError(f'{where} holds another model ({"; ".join(diffs)})')
  try:
    weights, step = inference.restore_state(source, config.init_from, config.init_checkpoint)
  except CheckpointError as e:
    raise ConfigError(f'{where}: {e}') from None
  logging.info('Initialised from %s, checkpoint %s (step %d)', config.init_from,
               config.init_checkpoint, step)
  return state.replace(params=weights.params, batch_stats=weights.batch_stats)


def _check_finite(sums: dict[str, np.ndarray], step: int, policy: str,
                  last_checkpoint: int | None) -> None:
  if not sums['nonfinite']:
    return
  first = int(sums['first_nonfinite_step'])
  checkpoint_note = (f'the newest checkpoint (step {last_checkpoint}) is intact'
                     if last_checkpoint is not None else 'no checkpoint had been written yet')
  if policy == 'skip':
    logging.warning('Skipped %d update(s) with a non-finite loss or gradient, the first at '
                    'step %d.', int(sums['nonfinite']), first)
    return
  raise DivergedError(
      f'the loss or gradient became NaN or infinite at step {first} '
      f'({int(sums["nonfinite"])} such step(s) up to step {step}); no such update was '
      f'applied, and {checkpoint_note}. Lower '
      f'config.optimizer.learning_rate, set config.optimizer.grad_clip_norm, or set '
      f'config.nonfinite=skip to skip such updates and go on.')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its newest good checkpoint.

  Returns the final evaluation summary (also written to
  `workdir/eval_results.json`). On SIGTERM it saves a checkpoint at the next
  step boundary and returns early with `summary['preempted'] = 1.0`.
  """
  if config.nonfinite not in NONFINITE_POLICIES:
    raise ConfigError(f'config.nonfinite must be one of {NONFINITE_POLICIES}, '
                      f'got {config.nonfinite!r}')
  model = models.create_model(config.model, config.data.num_classes)
  model.check_input_shape((1, *config.data.image_size, 3))
  # One model per training scale (multi-scale training), checked before any work.
  train_models = views.models_at_scales(config, config.train_input_scales,
                                        'config.train_input_scales') or (model,)
  parallel.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.eval_batch_size, 'eval_batch_size')
  workdir = prepare_workdir(config, workdir)

  data_dir = input_pipeline.resolve_data_dir(config.data, workdir)
  shard = (jax.process_index(), jax.process_count())
  train_data = input_pipeline.load_split(data_dir, 'train', config.data, *shard,
                                         size=input_pipeline.cache_size(config.data))
  eval_data = input_pipeline.load_split(data_dir, 'validation', config.data, *shard)
  batches = input_pipeline.TrainBatches(train_data, config.batch_size, config.seed,
                                        config.data.augment, config.data.image_size, *shard)
  config = with_class_weights(config, train_data)
  total_steps = num_train_steps(config, batches.steps_per_epoch)
  logging.info('%d train / %d validation frames; %d steps of %d (%.1f epochs)',
               train_data.num_global, eval_data.num_global, total_steps, config.batch_size,
               total_steps / batches.steps_per_epoch)

  tx, schedule = optim.create_optimizer(config.optimizer, total_steps)
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  mesh = parallel.create_mesh()
  replicated = parallel.replicated(mesh)
  state = jax.device_put(create_train_state(config, model, tx, init_key), replicated)
  parameter_overview.log_parameter_overview(state.params)

  manager = checkpointing.create_manager(workdir, config)
  best_manager = checkpointing.create_best_manager(workdir)
  # Fixed validation frames whose predictions go to TensorBoard at each eval.
  panel_indices = np.linspace(0, len(eval_data) - 1, min(config.num_panels, len(eval_data)),
                              dtype=int)
  restored = checkpointing.restore_latest(manager, state, config)
  if restored is not None:
    state = restored
    logging.info('Resuming training from step %d', int(state.step))
  elif config.init_from:
    state = jax.device_put(initialize_from(state, config), replicated)
  start_step = int(state.step)

  data_sharding = parallel.batch_sharding(mesh)
  # One compiled step per training scale, each compiled when first drawn.
  p_train_steps = [jax.jit(
      functools.partial(train_step, config=config, dropout_key=dropout_key, apply_fn=m.apply),
      in_shardings=(replicated, data_sharding), out_shardings=replicated, donate_argnums=0)
                   for m in train_models]
  p_eval_step = make_eval_fn(config, mesh)

  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  report = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer)
  summary: dict[str, float] = {}
  train_sums = None
  step = logged_step = start_step
  device_batches = parallel.prefetch_to_device(batches.iterate(start_step), data_sharding,
                                               config.prefetch_batches)
  try:
    with metric_writers.ensure_flushes(writer), preemption.StopRequest() as stop:
      for step in range(start_step + 1, total_steps + 1):
        with jax.profiler.StepTraceAnnotation('train', step_num=step):
          state, step_metrics = p_train_steps[train_scale_index(config, step)](
              state, next(device_batches))
        # Sums stay on device; the host reads them every log_every_steps.
        train_sums = _accumulate(train_sums, step_metrics)
        if jax.process_index() == 0:
          report(step)
        is_last = step == total_steps
        preempted = stop.should_stop(step)
        if step % config.log_every_steps == 0 or is_last or preempted:
          sums = jax.device_get(train_sums)
          train_sums = None
          _check_finite(sums, step, config.nonfinite, manager.latest_step())
          applied = step - logged_step - int(sums['nonfinite'])
          logged_step = step
          scalars = {
              'train/loss': sums['loss_sum'] / max(sums['weight_sum'], 1e-12),
              'train/pixel_accuracy': sums['correct'] / max(sums['pixels'], 1),
              'train/grad_norm': float(sums['grad_norm']) / max(applied, 1),  # window mean
              'train/skipped_updates': int(sums['nonfinite']),
              'train/learning_rate': float(schedule(step - 1)),
          }
          writer.write_scalars(step, scalars)
          if jax.process_index() == 0:
            reports.append_history(workdir, step, scalars)
        if preempted:
          checkpointing.save(manager, step, state, config)
          logging.warning('Stopped by %s at step %d; checkpoint saved. Run the same command '
                          'to resume.', stop.signal_name or 'preemption', step)
          return {'preempted': 1.0, 'step': float(step)}
        if step % config.eval_every_steps == 0 or is_last:
          with report.timed('eval'):
            summary, _ = evaluate(p_eval_step, state, eval_data, config, data_sharding)
            scalars = {f'eval/{k}': v for k, v in summary.items() if not math.isnan(v)}
            writer.write_scalars(step, scalars)
            if checkpointing.maybe_save_best(best_manager, workdir, step, summary['mean_iou'],
                                             state, config):
              logging.info('New best validation mIoU %.4f at step %d', summary['mean_iou'], step)
            # Every process runs the model (it spans all of them); process 0 writes.
            panels = predict_panels(state, eval_data, config, panel_indices)
            if jax.process_index() == 0:
              reports.append_history(workdir, step, scalars)
              writer.write_images(step, {'eval/predictions': panels[None]})
        if step % config.checkpoint_every_steps == 0 or is_last:
          with report.timed('checkpoint'):
            checkpointing.save(manager, step, state, config)
  finally:
    # An asynchronous save in flight is completed, whatever ended the loop.
    for m in (manager, best_manager):
      m.wait_until_finished()
      m.close()

  if not summary:  # nothing left to train: score the restored state.
    summary, _ = evaluate(p_eval_step, state, eval_data, config, data_sharding)
  best = checkpointing.best_record(workdir) or {}
  if jax.process_index() == 0:
    (epath.Path(workdir) / reports.EVAL_RESULTS).write_text(json.dumps(
        {'step': int(state.step), 'best_step': best.get('step'), **summary}, indent=2))
    reports.plot_training_curves(workdir, epath.Path(workdir) / 'training_curves.png')
  logging.info('Final validation: mean IoU %.4f, pixel accuracy %.4f (step %d); best mean IoU '
               '%.4f at step %s (checkpoints_best/)', summary['mean_iou'],
               summary['pixel_accuracy'], int(state.step), best.get('mean_iou', float('nan')),
               best.get('step'))
  return summary
