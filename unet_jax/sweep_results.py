"""Aggregate a sweep: mean +- std over seeds per variant; CSV, markdown, a plot.

Final metrics come from each run's eval_results.json (the last evaluation),
best from best.json. The spread is the sample standard deviation (ddof=1)
over the seeds that finished; with one seed it is undefined (shown as '-').
Each variant is compared with the first one (the baseline) on final mIoU
and on final pixel accuracy:
the difference of means, its standard error sqrt(s1^2/n1 + s2^2/n2), and
Welch's t-test (t, two-sided p). p < 0.05 is marked as a difference beyond
the spread over seeds; with 3 seeds each, that needs |t| above about 2.8-4.
"""

import json
import math
from typing import Any, Sequence

import numpy as np
from etils import epath
from scipy import stats

from unet_jax import reports

METRICS = ('final_mean_iou', 'best_mean_iou', 'final_pixel_accuracy')
CLEAR_P = 0.05  # Welch p below which a difference is called beyond the seed spread
COMPARED = {'final_mean_iou': 'diff', 'final_pixel_accuracy': 'acc_diff'}  # metric -> key prefix


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  if not values:
    return math.nan, math.nan
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
  """(mean(a) - mean(b), its standard error, Welch's t, two-sided p); nan without 2+ of each."""
  (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
  if len(a) < 2 or len(b) < 2:
    return ma - mb, math.nan, math.nan, math.nan
  va, vb = sa**2 / len(a), sb**2 / len(b)  # squared standard errors of the two means
  se = math.sqrt(va + vb)
  if not se > 0:
    return ma - mb, se, math.nan, math.nan
  dof = (va + vb)**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
  t = (ma - mb) / se
  return ma - mb, se, t, float(2 * stats.t.sf(abs(t), dof))


def _read_run(run_dir: epath.Path) -> dict[str, Any] | None:
  result = reports.read_eval_results(run_dir)
  if result is None:
    return None
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
    for metric in COMPARED:
      row[f'{metric}_values'] = [r[metric] for r in runs]
    rows.append(row)
  for row in rows:
    for metric, key in COMPARED.items():
      row[key], row[f'{key}_se'], row[f'{key}_t'], row[f'{key}_p'] = welch(
          row[f'{metric}_values'], rows[0][f'{metric}_values'])
  root.mkdir(parents=True, exist_ok=True)
  reports.write_csv(root / 'results.csv', [
      {k: v for k, v in r.items() if k != 'per_class' and not k.endswith('_values')}
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


def _versus_baseline(row: dict[str, Any], key: str) -> str:
  if math.isnan(row[f'{key}_t']):
    return '-'
  text = (f"{row[key]:+.4f} ± {row[f'{key}_se']:.4f} "
          f"(t={row[f'{key}_t']:+.1f}, p={row[f'{key}_p']:.2f})")
  return f'**{text}**' if row[f'{key}_p'] < CLEAR_P else text


def markdown(rows: list[dict[str, Any]]) -> str:
  base = rows[0]['variant'] if rows else '-'
  lines = ['| variant | seeds | final mIoU | best mIoU | final pixel acc. '
           f'| final mIoU vs {base} | final pixel acc. vs {base} |',
           '|---|---:|---:|---:|---:|---|---|']
  for i, r in enumerate(rows):
    versus = (['(baseline)'] * 2 if i == 0 else [_versus_baseline(r, k) for k in COMPARED.values()])
    lines.append(f"| {r['variant']} | {r['seeds_finished']}/{r['seeds']} | "
                 + ' | '.join(_pm(r[f'{m}_mean'], r[f'{m}_std']) for m in METRICS)
                 + ' | ' + ' | '.join(versus) + ' |')
  return '\n'.join(lines) + '\n'


def plot(rows: list[dict[str, Any]], path: epath.Path) -> None:
  """Final mIoU per variant: each seed a dot, mean +- std as a bar; baseline dashed."""
  plt = reports.plt
  fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(rows), 3.6))
  for i, r in enumerate(rows):
    values = r['final_mean_iou_values']
    ax.plot([i] * len(values), values, '.', color='0.4', ms=6)
    std = 0.0 if math.isnan(r['final_mean_iou_std']) else r['final_mean_iou_std']
    ax.errorbar(i + 0.15, r['final_mean_iou_mean'], yerr=std, fmt='o', color='#c44e52',
                capsize=4)
  if rows and not math.isnan(rows[0]['final_mean_iou_mean']):
    ax.axhline(rows[0]['final_mean_iou_mean'], color='grey', lw=0.8, ls='--')
  ax.set_xticks(range(len(rows)), [f"{r['variant']} (n={r['seeds_finished']})" for r in rows],
                fontsize=8, rotation=25, ha='right')
  ax.set_ylabel('final validation mIoU')
  ax.set_title('dots: seeds; red: mean ± std; dashed: ' + (rows[0]['variant'] if rows else ''),
               fontsize=9)
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  reports.save_figure(fig, path)
