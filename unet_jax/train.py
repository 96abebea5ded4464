"""Training and evaluation loop: jit-compiled, data-parallel over all devices.

`train_and_evaluate(config, workdir)` is the whole run: load data, build the
model and optimizer, resume from the newest checkpoint in the workdir if any
(else start from `config.init_from`'s weights when set), train with periodic
evaluation, logging and checkpoints.
"""

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import parameter_overview
from etils import epath

from unet_jax import (checkpointing, eval_loop, losses, metric_writer, models, optim, parallel,
                      preemption, reports, restore, views)
from unet_jax import progress as progress_lib
from unet_jax import workdir as workdir_lib
from unet_jax.data import augmentation, loading, reading
from unet_jax.errors import ConfigError, DivergedError, UserError, WorkdirError
from unet_jax.train_state import TrainState, create_train_state
from unet_jax.train_step import NO_STEP, StepMetrics, train_step


NONFINITE_POLICIES = ('stop', 'skip')


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return max(1, int(math.ceil(config.num_epochs * steps_per_epoch)))


def train_scale_index(config: ml_collections.ConfigDict, step: int) -> int:
  """Which `config.train_input_scales` entry trains `step`: drawn from (seed, step) alone.

  A resumed run draws the same scales; every process draws the same one.
  """
  count = len(config.train_input_scales)
  return int(np.random.default_rng([config.seed, step]).integers(count)) if count > 1 else 0


def _check_finite(sums: StepMetrics, step: int, policy: str,
                  last_checkpoint: int | None) -> None:
  if not sums.nonfinite:
    return
  first = int(sums.first_nonfinite_step)
  checkpoint_note = (f'the newest checkpoint (step {last_checkpoint}) is intact'
                     if last_checkpoint is not None else 'no checkpoint had been written yet')
  if policy == 'skip':
    logging.warning('Skipped %d update(s) with a non-finite loss or gradient, the first at '
                    'step %d.', int(sums.nonfinite), first)
    return
  raise DivergedError(
      f'the loss or gradient became NaN or infinite at step {first} '
      f'({int(sums.nonfinite)} such step(s) up to step {step}); no such update was '
      f'applied, and {checkpoint_note}. Lower '
      f'config.optimizer.learning_rate, set config.optimizer.grad_clip_norm, or set '
      f'config.nonfinite=skip to skip such updates and go on.')


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
  """Runs reporting code whose failure must not stop (or cost) training."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('Could not %s (%s: %s); training goes on. --verbosity=1 shows the '
                    'traceback.', what, type(e).__name__, str(e).splitlines()[0][:300] if str(e)
                    else '')
    logging.debug('Traceback of the failure to %s:', what, exc_info=True)


def _create_workdir(workdir: str) -> bool:
  """Creates `workdir` if needed; returns whether it was created now."""
  path = epath.Path(workdir)
  try:
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f'cannot write to --workdir={workdir}: {e}') from e
  return not existed


def _remove_if_empty(workdir: str) -> None:
  """Undoes `_create_workdir` for a run that failed before writing anything."""
  path = epath.Path(workdir)
  with contextlib.suppress(OSError):
    if all(p.name == workdir_lib.LOCK for p in path.iterdir()):
      (path / workdir_lib.LOCK).unlink(missing_ok=True)
      path.rmdir()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its newest good checkpoint.

  Returns the final evaluation summary (also written to
  `workdir/eval_results.json`). On SIGTERM it saves a checkpoint at the next
  step boundary and returns early with `summary['preempted'] = 1.0`.

  The workdir is locked for the run's life (`workdir.exclusive`), and nothing
  in it changes until the config, the data and any checkpoint to resume from
  have been checked: a refused run leaves an existing run as it was.
  """
  if config.nonfinite not in NONFINITE_POLICIES:
    raise ConfigError(f'config.nonfinite must be one of {NONFINITE_POLICIES}, '
                      f'got {config.nonfinite!r}')
  config = reading.resolve_classes(config)  # names from a palette file, or generic
  model = models.create_model(config.model, config.data.num_classes)
  model.check_input_shape((1, *config.data.image_size, 3))
  # Traced, not run: a model option that cannot work fails here, before any data is read.
  jax.eval_shape(model.init, jax.random.key(0),
                 jax.ShapeDtypeStruct((1, *config.data.image_size, 3), jnp.uint8))
  parallel.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.eval_batch_size, 'eval_batch_size')
  workdir = checkpointing.absolute(workdir)
  created = _create_workdir(workdir)
  lock = (workdir_lib.exclusive(workdir) if jax.process_index() == 0
          else contextlib.nullcontext())
  try:
    # A full disk may show first in the metric writer or history, not a checkpoint save.
    with (lock, checkpointing.background_failures_hidden(),
          checkpointing.storage_errors_as_workdir_error(f'writing the run to {workdir}')):
      return _train_locked(config, workdir, model)
  except UserError:
    if created and jax.process_index() == 0:
      _remove_if_empty(workdir)
    raise


def _train_locked(config: ml_collections.ConfigDict, workdir: str,
                  model: models.UNet) -> dict[str, float]:
  # One model per training scale (multi-scale training), checked before any work.
  train_models = views.models_at_scales(config, config.train_input_scales,
                                        'config.train_input_scales') or (model,)
  augmentation.check_available(config.data.augment)
  data_dir = loading.resolve_data_dir(config.data, workdir)
  shard = (jax.process_index(), jax.process_count())
  train_data = loading.load_split(data_dir, 'train', config.data, *shard,
                                         size=augmentation.cache_size(config.data))
  eval_data = loading.load_split(data_dir, 'validation', config.data, *shard)
  batches = augmentation.TrainBatches(train_data, config.batch_size, config.seed,
                                        config.data.augment, config.data.image_size, *shard)
  config_json = config.to_json_best_effort(indent=2)  # as given, before derived fields
  config = losses.with_class_weights(config, train_data.masks, train_data.num_global)
  total_steps = num_train_steps(config, batches.steps_per_epoch)
  logging.info('%d train / %d validation frames; %d steps of %d (%.1f epochs)',
               train_data.num_global, eval_data.num_global, total_steps, config.batch_size,
               total_steps / batches.steps_per_epoch)

  tx, schedule = optim.create_optimizer(config.optimizer, total_steps)
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  mesh = parallel.create_mesh()
  replicated = parallel.replicated(mesh)
  state = jax.device_put(create_train_state(config, model, tx, init_key), replicated)
  logging.info('Model: %s parameters (the table: --verbosity=1)',
               f'{parameter_overview.count_parameters(state.params):,}')
  parameter_overview.log_parameter_overview(state.params)  # a library INFO line

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
    state = jax.device_put(restore.initialize_from(state, config), replicated)
  start_step = int(state.step)
  # Everything is checked: from here on the workdir is this run's.
  if jax.process_index() == 0:
    with checkpointing.storage_errors_as_workdir_error(f'writing {workdir}/config.json'):
      workdir_lib.record_config(workdir, config_json)
      reports.trim_history(workdir, start_step)  # steps after it are redone

  data_sharding = parallel.batch_sharding(mesh)
  # One compiled step per training scale, each compiled when first drawn.
  p_train_steps = [jax.jit(
      functools.partial(train_step, config=config, dropout_key=dropout_key, apply_fn=m.apply),
      in_shardings=(replicated, data_sharding), out_shardings=replicated, donate_argnums=0)
                   for m in train_models]
  p_eval_step = eval_loop.make_eval_fn(config, mesh)

  writer = metric_writer.MetricWriter(workdir, just_logging=jax.process_index() > 0)
  progress = progress_lib.Progress(start_step, total_steps, writer)
  summary: dict[str, float] = {}
  window = _Window(start_step)
  step = saved_step = start_step
  device_batches = parallel.prefetch_to_device(batches.iterate(start_step), data_sharding,
                                               config.prefetch_batches)
  failed = False
  try:
    with writer, preemption.StopRequest() as stop:
      for step in range(start_step + 1, total_steps + 1):
        with jax.profiler.StepTraceAnnotation('train', step_num=step):
          state, step_metrics = p_train_steps[train_scale_index(config, step)](
              state, next(device_batches))
        window.add(step_metrics)
        progress.started(step)
        is_last = step == total_steps
        preempted = stop.should_stop(step)
        is_eval = step % config.eval_every_steps == 0 or is_last
        is_checkpoint = step % config.checkpoint_every_steps == 0 or is_last or preempted
        if step % config.log_every_steps == 0 or is_last or preempted:
          log_window(window, step, config, schedule, writer, workdir, manager, progress)
        elif (is_eval or is_checkpoint) and config.nonfinite == 'stop':
          # No checkpoint may hold a step after a non-finite one (see README).
          _check_finite(window.nonfinite(), step, 'stop', manager.latest_step())
        if is_checkpoint:
          checkpointing.save(manager, step, state, config)
          saved_step = step
        if preempted:
          logging.warning('Stopped by %s at step %d; checkpoint saved. Run the same command '
                          'to resume.', stop.signal_name or 'preemption', step)
          return {'preempted': 1.0, 'step': float(step)}
        if is_eval:
          summary = evaluate_and_record(p_eval_step, state, eval_data, config, step,
                                        data_sharding, writer, workdir, best_manager,
                                        panel_indices)
  except (KeyboardInterrupt, Exception) as e:  # pylint: disable=broad-except
    failed = True
    if not isinstance(e, (DivergedError, WorkdirError)):
      _save_before_stopping(manager, state, config, window, saved_step, e)
    raise
  finally:
    # An asynchronous save in flight is completed, whatever ended the loop; if an error
    # ended it, that error is the one reported.
    checkpointing.close((manager, best_manager), raise_errors=not failed)

  if not summary:  # nothing left to train: score the restored state.
    summary, _ = eval_loop.evaluate(p_eval_step, state, eval_data, config, data_sharding)
  best = checkpointing.best_record(workdir) or {}
  if jax.process_index() == 0:
    workdir_lib.write_json(epath.Path(workdir) / reports.EVAL_RESULTS,
                           {'step': int(state.step), 'best_step': best.get('step'), **summary})
    with best_effort('plot the training curves'):
      reports.plot_training_curves(workdir, epath.Path(workdir) / 'training_curves.png')
  logging.info('Final validation: mean IoU %.4f, pixel accuracy %.4f (step %d); best mean IoU '
               '%.4f at step %s (checkpoints_best/)', summary['mean_iou'],
               summary['pixel_accuracy'], int(state.step), best.get('mean_iou', float('nan')),
               best.get('step'))
  return summary


class _Window:
  """Train-step metrics summed on the device since the last log step."""

  def __init__(self, step: int):
    self.sums: StepMetrics | None = None
    self.logged_step = step

  def add(self, step_metrics: StepMetrics) -> None:
    self.sums = step_metrics if self.sums is None else self.sums.merge(step_metrics)

  def nonfinite(self) -> StepMetrics:
    """The window so far (read to the host without closing it)."""
    if self.sums is None:
      return StepMetrics(*(np.zeros((), np.float32),) * 5, np.int32(0), np.int32(NO_STEP))
    return jax.device_get(self.sums)

  def close(self, step: int) -> tuple[StepMetrics, int]:
    """(the window's sums, its number of steps); starts the next window."""
    sums, steps = jax.device_get(self.sums), step - self.logged_step
    self.sums, self.logged_step = None, step
    return sums, steps


def log_window(window: _Window, step: int, config: ml_collections.ConfigDict,
               schedule: Callable[[int], Any], writer, workdir: str, manager,
               progress: progress_lib.Progress) -> None:
  """Checks, writes and records the training metrics of the steps since the last log."""
  sums, steps = window.close(step)
  _check_finite(sums, step, config.nonfinite, manager.latest_step())
  applied = steps - int(sums.nonfinite)
  scalars = {
      'train/loss': float(sums.loss_sum / max(sums.weight_sum, 1e-12)),
      'train/pixel_accuracy': float(sums.correct / max(sums.pixels, 1)),
      'train/grad_norm': float(sums.grad_norm) / max(applied, 1),  # window mean
      'train/skipped_updates': int(sums.nonfinite),
      'train/learning_rate': float(schedule(step - 1)),
  }
  writer.write_scalars(step, scalars)
  if jax.process_index() == 0:
    progress.report(step, scalars['train/loss'])
    with best_effort(f'append step {step} to {reports.HISTORY}'):
      reports.append_history(workdir, step, scalars)


def evaluate_and_record(eval_fn, state: TrainState, eval_data: loading.SplitData,
                        config: ml_collections.ConfigDict, step: int, sharding, writer,
                        workdir: str, best_manager, panel_indices: np.ndarray
                        ) -> dict[str, float]:
  """Scores the validation split, keeps the best checkpoint, writes scalars and panels."""
  summary, _ = eval_loop.evaluate(eval_fn, state, eval_data, config, sharding)
  scalars = {f'eval/{k}': v for k, v in summary.items() if not math.isnan(v)}
  writer.write_scalars(step, scalars)
  checkpointing.maybe_save_best(best_manager, workdir, step, summary['mean_iou'], state, config)
  if jax.process_index() == 0:
    progress_lib.report_eval(step, summary, checkpointing.best_record(workdir))
    with best_effort(f'append step {step} to {reports.HISTORY}'):
      reports.append_history(workdir, step, scalars)
  # Every process runs the model (it spans all of them); process 0 writes.
  with best_effort(f'draw the prediction panels of step {step}'):
    panels = eval_loop.predict_panels(state, eval_data, config, panel_indices)
    if jax.process_index() == 0:
      writer.write_images(step, {'eval/predictions': panels[None]})
  return summary


def _save_before_stopping(manager, state: TrainState, config: ml_collections.ConfigDict,
                          window: _Window, saved_step: int, error: BaseException) -> None:
  """Keeps the steps done when an error ends the run, unless they may hold a bad update."""
  step = None
  try:
    step = int(state.step)  # fails if the error came inside the step (its input was donated)
    if step <= saved_step or (config.nonfinite == 'stop' and window.nonfinite().nonfinite):
      return
    checkpointing.save(manager, step, state, config)
    checkpointing.finish(manager)
    logging.warning('%s ended the run at step %d: saved a checkpoint of that step first.',
                    type(error).__name__, step)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('Could not save step %d after %s (%s: %s).', step, type(error).__name__,
                    type(e).__name__, e)
