"""SIGTERM as a request to checkpoint and stop at the next step boundary.

TPU VM preemption notices and SLURM requeues arrive as SIGTERM. The handler
only sets a flag; the training loop polls it between steps, saves, and exits
normally. On several processes they must all stop at the same step, which
JAX's preemption sync point (set up by `jax.distributed.initialize`) decides.
"""

import signal
import threading
import types

import jax
from absl import logging
from jax.experimental import multihost_utils


class StopRequest:
  """Catches SIGTERM while active (a context manager); `should_stop(step)` polls it."""

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
    self._signals = signals
    self._event = threading.Event()
    self._previous: dict[int, object] = {}
    self.signal_name = ''

  def __enter__(self) -> 'StopRequest':
    # With several processes, JAX's own preemption notifier (started by
    # jax.distributed.initialize) must keep SIGTERM to tell the others; and
    # signal handlers can only be installed from the main thread.
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    self.signal_name = signal.Signals(signum).name
    logging.warning('Received %s: will save a checkpoint and stop after the current step.',
                    self.signal_name)
    self._event.set()

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      # Every process reaches the same answer for the same step.
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = self.signal_name or 'preemption notice (SIGTERM)'
        return True
      return False
    return self._event.is_set()
