"""The console of a training run: one progress line per log step, one line per evaluation.

    step 120/1440 (8%)  loss 0.5321  2.13 steps/s  ETA 10m 18s
    eval at step 200: mIoU 0.3123 (best 0.3123 at step 200), pixel accuracy 0.9412

Rates count the time since the previous log step (evaluations and saves
included, so the ETA is what the run will take); `steps_per_sec` also goes to
TensorBoard. Per-class scalars stay in TensorBoard, the history file and
--mode=eval reports.
"""

import time

from absl import logging


def duration(seconds: float) -> str:
  """'1h 02m', '10m 18s', '42s'."""
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h {minutes:02d}m'
  return f'{minutes}m {secs:02d}s' if minutes else f'{secs}s'


class Progress:
  """Steps per second and the time left, reported at log steps."""

  def __init__(self, start_step: int, total_steps: int, writer=None):
    self.total_steps, self.writer = total_steps, writer
    self._step, self._time = start_step, None  # the clock starts after the first step

  def started(self, step: int) -> None:
    """Call after each step; the first one (compilation) is not timed."""
    if self._time is None:
      self._step, self._time = step, time.perf_counter()

  def report(self, step: int, loss: float) -> None:
    now = time.perf_counter()
    done = step - self._step
    rate = done / max(now - self._time, 1e-9) if self._time is not None and done else 0.0
    self._step, self._time = step, now
    left = (self.total_steps - step) / rate if rate else float('nan')
    eta = duration(left) if rate else '-'
    logging.info('step %d/%d (%d%%)  loss %.4f  %.2f steps/s  ETA %s', step, self.total_steps,
                 100 * step // max(self.total_steps, 1), loss, rate, eta)
    if self.writer is not None and rate:
      self.writer.write_scalars(step, {'steps_per_sec': rate})


def report_eval(step: int, summary: dict[str, float], best: dict | None) -> None:
  best_text = (f"best {best['mean_iou']:.4f} at step {best['step']}" if best else 'no best yet')
  logging.info('eval at step %d: mIoU %.4f (%s), pixel accuracy %.4f', step,
               summary['mean_iou'], best_text, summary['pixel_accuracy'])
