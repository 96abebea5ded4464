"""Side-by-side per-class IoU of finished runs, one column per workdir.

  python -m unet_jax.compare workdirs/carla_lab workdirs/carla_plus \
      --names='lab recipe,carla_plus' --out=docs/carla_results_table.md

Reads each workdir's eval_results.json (the final evaluation, which `main.py`
writes when training ends) and prints a
markdown table: IoU per class ('-' where a class is in neither the truth nor
the prediction of that run's evaluation), then mean IoU, pixel accuracy, mean
Dice, frequency-weighted IoU and the step evaluated. Classes absent from every
run are left out.
"""

import math
import sys
from typing import Sequence

from absl import app, flags
from etils import epath

from unet_jax import reports
from unet_jax.errors import WorkdirError

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line of `python -m unet_jax.compare` (defined only when run so)."""
  flags.DEFINE_string('names', '', 'comma-separated column names (default: the workdirs)')
  flags.DEFINE_string('out', '', 'also write the table to this file')


SUMMARY = (('mean_iou', '**mean IoU**'),
           ('mean_iou_truth', 'mean IoU over the classes in the truth'),
           ('pixel_accuracy', 'pixel accuracy'),
           ('mean_dice', 'mean Dice'), ('fw_iou', 'frequency-weighted IoU'))


def read_results(workdir: str) -> dict[str, float]:
  results = reports.read_eval_results(workdir)
  if results is None:
    raise WorkdirError(f'{epath.Path(workdir) / reports.EVAL_RESULTS} does not exist: '
                       f'{workdir} is not a finished training run')
  return results


def _cell(value: float, digits: int) -> str:
  return '-' if value is None or math.isnan(value) else f'{value:.{digits}f}'


def table(results: Sequence[dict[str, float]], names: Sequence[str]) -> str:
  """The markdown table of several runs' eval_results."""
  classes = list(dict.fromkeys(k[4:] for r in results for k in r if k.startswith('iou/')))
  lines = ['| class | ' + ' | '.join(names) + ' |', '|---|' + '---:|' * len(names)]
  for name in classes:
    values = [r.get(f'iou/{name}', math.nan) for r in results]
    if all(math.isnan(v) for v in values):
      continue
    lines.append(f'| {name} | ' + ' | '.join(_cell(v, 3) for v in values) + ' |')
  for key, label in SUMMARY:
    # Results written before a metric existed show '-' for it.
    lines.append(f'| {label} | ' + ' | '.join(_cell(r.get(key, math.nan), 4) for r in results)
                 + ' |')
  lines.append('| step evaluated | ' + ' | '.join(str(r['step']) for r in results) + ' |')
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> int:
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError('name one or more workdirs')
  names = FLAGS.names.split(',') if FLAGS.names else workdirs
  if len(names) != len(workdirs):
    raise app.UsageError(f'--names has {len(names)} names for {len(workdirs)} workdirs')
  try:
    text = table([read_results(w) for w in workdirs], names)
  except WorkdirError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(text)
  if FLAGS.out:
    epath.Path(FLAGS.out).write_text(text + '\n')
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
