"""Aggregate a sweep: mean +- std over seeds per variant; CSV, markdown, a plot.

Final metrics come from each run's eval_results.json (the last evaluation),
best from best.json. The spread is the sample standard deviation (ddof=1)
over the seeds that finished; with one seed it is undefined (shown as '-').
"""

import json
import math
from typing import Any, Sequence

import numpy as np
from etils import epath

from unet_jax import reports

METRICS = ('final_mean_iou', 'best_mean_iou', 'final_pixel_accuracy')


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  if not values:
    return math.nan, math.nan
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def _read_run(run_dir: epath.Path) -> dict[str, Any] | None:
  final = run_dir / 'eval_results.json'
  if not final.exists():
    return None
  result = json.loads(final.read_text())
  best = run_dir / 'best.json'
  best_iou = json.loads(best.read_text())['mean_iou'] if best.exists() else result['mean_iou']
  return {'final_mean_iou': result['mean_iou'], 'best_mean_iou': best_iou,
          'final_pixel_accuracy': result['pixel_accuracy'],
          'per_class': {k[4:]: v for k, v in result.items() if k.startswith('iou/')}}


def aggregate(workdir: str, sweep: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per variant; also writes results.csv/.md, per_class.csv, results.png."""
  root = epath.Path(workdir)
  rows = []
  for variant in sweep['variants']:
    runs = [r for s in sweep['seeds'] if (r := _read_run(root / variant / f'seed_{s}'))]
    row: dict[str, Any] = {'variant': variant, 'seeds_finished': len(runs),
                           'seeds': len(sweep['seeds'])}
    for metric in METRICS:
      row[f'{metric}_mean'], row[f'{metric}_std'] = mean_std([r[metric] for r in runs])
    classes = sorted({c for r in runs for c in r['per_class']})
    row['per_class'] = {c: mean_std([r['per_class'][c] for r in runs
                                     if not math.isnan(r['per_class'].get(c, math.nan))])[0]
                        for c in classes}
    rows.append(row)
  root.mkdir(parents=True, exist_ok=True)
  reports.write_csv(root / 'results.csv', [{k: v for k, v in r.items() if k != 'per_class'}
                                    for r in rows])
  classes = sorted({c for r in rows for c in r['per_class']})
  reports.write_csv(root / 'per_class.csv', [{'variant': r['variant'],
                                       **{c: r['per_class'].get(c, math.nan) for c in classes}}
                                      for r in rows])
  (root / 'results.md').write_text(markdown(rows))
  plot(rows, root / 'results.png')
  return rows


def _pm(mean: float, std: float) -> str:
  if math.isnan(mean):
    return '-'
  return f'{mean:.4f} ± {std:.4f}' if not math.isnan(std) else f'{mean:.4f} ± -'


def markdown(rows: list[dict[str, Any]]) -> str:
  lines = ['| variant | seeds | final mIoU | best mIoU | final pixel acc. |',
           '|---|---:|---:|---:|---:|']
  for r in rows:
    lines.append(f"| {r['variant']} | {r['seeds_finished']}/{r['seeds']} | "
                 + ' | '.join(_pm(r[f'{m}_mean'], r[f'{m}_std']) for m in METRICS) + ' |')
  return '\n'.join(lines) + '\n'


def plot(rows: list[dict[str, Any]], path: epath.Path) -> None:
  plt = reports.plt
  fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(rows), 3.6))
  x = np.arange(len(rows))
  means = [r['final_mean_iou_mean'] for r in rows]
  stds = [0 if math.isnan(r['final_mean_iou_std']) else r['final_mean_iou_std'] for r in rows]
  ax.bar(x, means, yerr=stds, capsize=4, color='#4c72b0', alpha=0.8)
  ax.set_xticks(x, [f"{r['variant']}\n(n={r['seeds_finished']})" for r in rows], fontsize=8)
  ax.set_ylabel('final validation mIoU (mean ± std)')
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  reports.save_figure(fig, path)
