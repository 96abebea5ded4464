"""Orbax checkpoints under `workdir/checkpoints`, with checks on resume.

Each checkpoint holds the train state (step, params, optimizer state,
batch-norm statistics) and a small `run` record of what shapes the state
(model, classes, image size). Batches and dropout are pure functions of
(seed, step), so the step alone fixes the position in the data stream.

Saves are atomic (Orbax writes `<step>.orbax-checkpoint-tmp*` and renames it
when complete; leftovers are removed at start) and old checkpoints are only
deleted after a newer one is complete. A checkpoint that is nevertheless
damaged (files truncated or missing) is moved to `checkpoints_damaged/` with a
warning, and the next older one is used. Evaluation, prediction and export
open the checkpoints read-only: they skip a damaged one without moving it and
never touch a save in flight.

A save that fails for lack of space or permission raises WorkdirError naming
the step and the cause; the older checkpoints stay as they were.
"""

import contextlib
import io
import json
import logging as py_logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from unet_jax import models, workdir as workdir_lib
from unet_jax.errors import CheckpointError, UserError, WorkdirError

BEST_RECORD = 'best.json'


def run_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What decides the shapes of a checkpoint's state (not how it is computed)."""
  m = config.model
  return {
      'widths': list(models.level_widths(m)),
      'convs_per_block': m.convs_per_block,
      'norm': m.norm,
      'group_size': m.group_size,
      'upsample': m.upsample,
      'num_classes': config.data.num_classes,
      'optimizer': config.optimizer.name,
  }


def absolute(workdir: str) -> str:
  """Orbax wants absolute paths; cloud paths (gs://...) already are."""
  return workdir if '://' in workdir else os.path.abspath(workdir)


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True, cleanup_tmp_directories=True)
  return ocp.CheckpointManager(
      epath.Path(absolute(workdir)) / 'checkpoints', options=options, item_names=('state', 'run'))


def create_best_manager(workdir: str) -> ocp.CheckpointManager:
  """`workdir/checkpoints_best`: the single checkpoint with the best validation mIoU."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(epath.Path(absolute(workdir)) / 'checkpoints_best', options=options,
                               item_names=('state', 'run'))


def open_read_only(workdir: str, which: str = 'checkpoints') -> ocp.CheckpointManager:
  """A manager that only reads `workdir/<which>`: creates, deletes and cleans up nothing.

  (A reader that cleaned up temporary folders would delete a training run's save
  in flight.) CheckpointError when the folder does not exist.
  """
  directory = epath.Path(absolute(workdir)) / which
  if not directory.is_dir():
    raise CheckpointError(f'no checkpoint in {directory} (the folder does not exist): '
                          f'--workdir must be the workdir of a training run')
  options = ocp.CheckpointManagerOptions(create=False, read_only=True, save_interval_steps=0)
  with _orbax_logs_hidden():  # its notes that a read-only manager will not save
    return ocp.CheckpointManager(directory, options=options, item_names=('state', 'run'))


def best_record(workdir: str) -> dict[str, Any] | None:
  """`{'step', 'mean_iou'}` of the best checkpoint so far, if any."""
  path = epath.Path(workdir) / BEST_RECORD
  return json.loads(path.read_text()) if path.exists() else None


@contextlib.contextmanager
def storage_errors_as_workdir_error(what: str) -> Iterator[None]:
  """A full disk or a permission error while `what` becomes one WorkdirError line."""
  try:
    yield
  except UserError:
    raise  # already one line (e.g. an inner save's WorkdirError)
  except Exception as e:  # pylint: disable=broad-except
    cause = workdir_lib.storage_error(e)
    if cause is None:
      raise
    raise WorkdirError(f'{what} failed: {cause.strerror or cause}. Earlier checkpoints are '
                       f'intact; free space (or fix permissions) and run the same command '
                       f'to resume.') from e


def maybe_save_best(manager: ocp.CheckpointManager, workdir: str, step: int, mean_iou: float,
                    state: Any, config: ml_collections.ConfigDict) -> bool:
  """Saves `state` as the best checkpoint if `mean_iou` beats the record."""
  best = best_record(workdir)
  if best is not None and not mean_iou > best['mean_iou']:
    return False
  save(manager, step, state, config)
  finish(manager)  # the record must never point at a missing save
  if jax.process_index() == 0:
    workdir_lib.write_json(epath.Path(workdir) / BEST_RECORD,
                           {'step': step, 'mean_iou': mean_iou})
  return True


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         config: ml_collections.ConfigDict) -> None:
  """Starts an asynchronous save of `state` at `step` (no-op if it exists)."""
  if step in manager.all_steps():
    return
  with storage_errors_as_workdir_error(f'saving the checkpoint of step {step} to '
                                       f'{manager.directory}'):
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        run=ocp.args.JsonSave(run_record(config))), force=True)


def finish(manager: ocp.CheckpointManager) -> None:
  """Waits for a save in flight; a storage failure of it becomes a WorkdirError."""
  with storage_errors_as_workdir_error(f'saving a checkpoint to {manager.directory}'):
    manager.wait_until_finished()


def close(managers: Iterable[ocp.CheckpointManager], raise_errors: bool) -> None:
  """Completes each manager's save in flight and closes it, all of them whatever fails.

  With `raise_errors`, the first failure is raised after all are closed; without (the
  run is already ending on another error, which must stay the one reported), failures
  are logged.
  """
  first = None
  for manager in managers:
    try:
      finish(manager)
    except Exception as e:  # pylint: disable=broad-except
      first = first or e
    try:
      with storage_errors_as_workdir_error(f'closing {manager.directory}'):
        manager.close()
    except Exception as e:  # pylint: disable=broad-except
      first = first or e
  if first is not None:
    if raise_errors:
      raise first
    logging.warning('Closing the checkpoint managers also failed: %s: %s',
                    type(first).__name__, first)


def _check_compatible(saved: dict[str, Any], config: ml_collections.ConfigDict,
                      where: str) -> None:
  # run_record() holds only lists and scalars, so it compares equal to its JSON copy.
  expected = run_record(config)
  if saved != expected:
    diffs = [f'{k}: checkpoint has {saved.get(k)}, config has {v}'
             for k, v in expected.items() if saved.get(k) != v]
    raise CheckpointError(
        f'checkpoint {where} belongs to another run ({"; ".join(diffs)}). '
        f'Refusing to resume: use a fresh --workdir, or the config that wrote it.')


def _set_aside(manager: ocp.CheckpointManager, step: int, reason: Exception) -> None:
  src = epath.Path(manager.directory) / str(step)
  dst = epath.Path(manager.directory).parent / 'checkpoints_damaged' / f'{step}-{int(time.time())}'
  logging.warning('Checkpoint %s is damaged and cannot be restored (%s). Moving it to %s '
                  'and trying the previous one.', src, _damage(reason), dst)
  if jax.process_index() == 0:
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'set aside damaged checkpoint {step}')
  manager.reload()


class _DropOrbaxLogs(py_logging.Filter):
  """Drops the log records of Orbax and asyncio: a failure they log is also raised to us."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return not ('/orbax/' in record.pathname or record.name == 'asyncio')


def quiet_exit() -> None:
  """For a process about to exit on an error it reported: Orbax tasks that fail
  while being torn down (a save cut short) log nothing more."""
  for h in py_logging.getLogger().handlers:
    h.addFilter(_DropOrbaxLogs())
  sys.unraisablehook = lambda unraisable: None
  sys.stderr = _MainThreadStderr(sys.stderr, threading.get_ident())  # threads' output dropped


@contextlib.contextmanager
def _orbax_logs_hidden() -> Iterator[None]:
  drop, handlers = _DropOrbaxLogs(), list(py_logging.getLogger().handlers)
  for h in handlers:
    h.addFilter(drop)
  try:
    yield
  finally:
    for h in handlers:
      h.removeFilter(drop)


@contextlib.contextmanager
def _quiet_failure() -> Iterator[None]:
  """Holds back what a failing restore prints; we report the failure in one line.

  Orbax logs the failure with its traceback, and tensorstore reads still in
  flight print dozens of 'Event loop is closed' tracebacks once Orbax has
  closed its event loop. Anything else printed meanwhile is passed on.
  """
  held, stderr, hook = io.StringIO(), sys.stderr, sys.unraisablehook
  sys.stderr = held
  sys.unraisablehook = lambda unraisable: None  # 'Event loop is closed' arrives here too
  try:
    with _orbax_logs_hidden():
      try:
        yield
      except Exception:
        time.sleep(0.3)  # the in-flight reads finish within ~0.1 s
        raise
  finally:
    sys.stderr, sys.unraisablehook = stderr, hook
    kept = [line for line in held.getvalue().splitlines(keepends=True)
            if not _is_restore_noise(line)]
    stderr.write(''.join(kept))


class _MainThreadStderr(io.TextIOBase):
  """sys.stderr for the main thread; other threads' writes are held back."""

  def __init__(self, stream, main_thread: int):
    super().__init__()
    self.stream, self.main_thread, self.held = stream, main_thread, []

  def write(self, text: str) -> int:
    if threading.get_ident() == self.main_thread:
      return self.stream.write(text)
    if sum(map(len, self.held)) < 1 << 20:
      self.held.append(text)
    return len(text)

  def flush(self) -> None:
    self.stream.flush()


@contextlib.contextmanager
def background_failures_hidden() -> Iterator[None]:
  """Holds back what Orbax's save threads print about a failed asynchronous save.

  A save that fails for lack of space makes its threads log and print hundreds
  of lines of tracebacks; the main thread learns of the failure at the next
  save or wait and reports it as one WorkdirError line. Held-back output is
  dropped after a WorkdirError and printed after anything else.
  """
  main = threading.get_ident()
  stderr, hook = sys.stderr, sys.unraisablehook
  proxy = _MainThreadStderr(stderr, main)
  drop = _DropOrbaxLogs()
  handlers = list(py_logging.getLogger().handlers)
  sys.stderr = proxy
  sys.unraisablehook = lambda u: None if threading.get_ident() != main else hook(u)
  for h in handlers:
    h.addFilter(drop)
  failed_saving = False
  try:
    yield
  except WorkdirError:
    failed_saving = True
    time.sleep(0.5)  # the failed save's threads finish printing within ~0.1 s
    raise
  finally:
    sys.stderr, sys.unraisablehook = stderr, hook
    for h in handlers:
      h.removeFilter(drop)
    if not failed_saving:
      stderr.write(''.join(proxy.held))


def _is_restore_noise(line: str) -> bool:
  return (line.startswith(('Traceback (most recent call last)', ' ', '\t',
                           'RuntimeError: Event loop is closed'))
          or 'Event loop is closed' in line or line.strip() in ('^', ''))


def _restore_checked(manager: ocp.CheckpointManager, step: int, target: Any,
                     config: ml_collections.ConfigDict) -> Any:
  """The state of checkpoint `step` after checking its run record against `config`.

  CheckpointError if it belongs to another run; anything else if it is damaged.
  """
  with _quiet_failure():
    saved = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
  _check_compatible(saved, config, f'{manager.directory}/{step}')
  with _quiet_failure():
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))['state']


def _damage(e: Exception) -> str:
  return f'{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ""}'


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   config: ml_collections.ConfigDict) -> Any | None:
  """Restores the newest good checkpoint into the structure/sharding of `target`.

  Returns None when there is none. Raises CheckpointError when the checkpoint
  was written by a run whose model or data shape differ.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  for step in steps:
    try:
      restored = _restore_checked(manager, step, target, config)
    except CheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      _set_aside(manager, step, e)
      continue
    logging.info('Restored checkpoint %s/%d', manager.directory, step)
    return restored
  if steps:
    logging.warning('Every checkpoint in %s (steps %s) was damaged and moved to '
                    'checkpoints_damaged/: starting again from step 0.', manager.directory,
                    ', '.join(map(str, sorted(steps))))
  return None


def restore_for_use(workdir: str, checkpoint: str, make_target: Callable[[], Any],
                    config: ml_collections.ConfigDict) -> tuple[Any, int]:
  """(state, step) of a run's checkpoint 'latest', 'best' or a step number, read-only.

  `make_target()` builds the state to restore into, once the checkpoint is
  known to exist. 'latest' falls back to the next older checkpoint when the newest is damaged
  (with a warning, leaving it in place); 'best' and a step number name exactly
  one checkpoint, so a damaged one is an error.
  """
  if checkpoint not in ('latest', 'best'):
    try:
      int(checkpoint)
    except ValueError:
      raise CheckpointError(f"--checkpoint must be 'latest', 'best' or a step, "
                            f'got {checkpoint!r}') from None
  manager = open_read_only(workdir, 'checkpoints_best' if checkpoint == 'best' else 'checkpoints')
  with manager:
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
      raise CheckpointError(f'no checkpoint in {manager.directory}')
    if checkpoint in ('latest', 'best'):
      candidates = steps if checkpoint == 'latest' else steps[:1]
    else:
      if int(checkpoint) not in steps:
        raise CheckpointError(f'no checkpoint at step {checkpoint} in {manager.directory}; '
                              f'there are {sorted(steps)}')
      candidates = [int(checkpoint)]
    target = make_target()
    for step in candidates:
      where = f'{manager.directory}/{step}'
      try:
        return _restore_checked(manager, step, target, config), step
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        if step == candidates[-1]:
          raise CheckpointError(f'checkpoint {where} is damaged and cannot be restored '
                                f'({_damage(e)})' + (
                                    '; no older checkpoint is intact' if len(candidates) > 1
                                    else '')) from None
        logging.warning('Checkpoint %s is damaged and cannot be restored (%s); using the '
                        'previous one.', where, _damage(e))
  raise AssertionError('unreachable')
