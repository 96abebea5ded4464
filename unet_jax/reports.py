"""Evaluation reports (JSON, CSV, markdown, confusion heatmap) and training curves."""

import csv
import io
import json
import math
from typing import Any, Sequence

import matplotlib
matplotlib.use('Agg')  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from etils import epath  # noqa: E402

from unet_jax import metrics  # noqa: E402
from unet_jax import workdir as workdir_lib  # noqa: E402

HISTORY = 'metrics_history.jsonl'
EVAL_RESULTS = 'eval_results.json'  # a finished run's final evaluation (train.py)


def per_class_rows(cm: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
  ious, dice = metrics.iou_per_class(cm), metrics.dice_per_class(cm)
  truth, pred = np.asarray(cm).sum(1), np.asarray(cm).sum(0)
  return [{'class': i, 'name': name, 'iou': ious[i], 'dice': dice[i],
           'true_pixels': int(truth[i]), 'predicted_pixels': int(pred[i])}
          for i, name in enumerate(class_names)]


def _fmt(x: float) -> str:
  return '-' if isinstance(x, float) and math.isnan(x) else f'{x:.4f}'


def markdown_table(summary: dict[str, float], rows: list[dict[str, Any]]) -> str:
  lines = ['| metric | value |', '|---|---|']
  for key in ('pixel_accuracy', 'mean_iou', 'mean_iou_truth', 'mean_dice', 'fw_iou',
              'num_present_classes'):
    lines.append(f'| {key} | {_fmt(summary[key])} |')
  lines += ['', '| class | name | IoU | Dice | true pixels | predicted pixels |',
            '|---:|---|---:|---:|---:|---:|']
  for r in rows:
    if r['true_pixels'] or r['predicted_pixels']:
      lines.append(f"| {r['class']} | {r['name']} | {_fmt(r['iou'])} | {_fmt(r['dice'])} | "
                   f"{r['true_pixels']} | {r['predicted_pixels']} |")
  return '\n'.join(lines) + '\n'


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: epath.Path,
                   title: str = '') -> None:
  """Row-normalised heatmap over the classes present in truth or prediction."""
  cm = np.asarray(cm, np.float64)
  keep = np.nonzero(cm.sum(0) + cm.sum(1))[0]
  sub = cm[np.ix_(keep, keep)]
  rows = sub / np.maximum(sub.sum(1, keepdims=True), 1)
  names = [f'{i} {class_names[i]}' for i in keep]
  size = 2.5 + 0.45 * len(keep)
  fig, ax = plt.subplots(figsize=(size + 1.5, size))
  im = ax.imshow(rows, cmap='Blues', vmin=0, vmax=1)
  ax.set_xticks(range(len(keep)), names, rotation=90, fontsize=8)
  ax.set_yticks(range(len(keep)), names, fontsize=8)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true (each row sums to 1)')
  for (r, c), v in np.ndenumerate(rows):
    if v >= 0.01:
      ax.text(c, r, f'{v:.2f}', ha='center', va='center', fontsize=6,
              color='white' if v > 0.5 else 'black')
  fig.colorbar(im, ax=ax, fraction=0.046)
  ax.set_title(title or 'confusion matrix')
  fig.tight_layout()
  save_figure(fig, path)


def save_figure(fig, path: epath.Path) -> None:
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=110)
  plt.close(fig)
  epath.Path(path).write_bytes(buf.getvalue())


def write_csv(path: epath.Path, rows: list[dict[str, Any]]) -> None:
  """Rows of equal keys as a CSV file with a header (nothing for no rows)."""
  if not rows:
    return
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  epath.Path(path).write_text(buf.getvalue())


def write_eval_report(out_dir: epath.Path, cm: np.ndarray, class_names: Sequence[str],
                      header: dict[str, Any]) -> dict[str, Any]:
  """Writes metrics.json, per_class.csv, confusion.csv, report.md, confusion.png."""
  out_dir = epath.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  summary = metrics.summarize(cm, class_names)
  rows = per_class_rows(cm, class_names)
  clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v
  (out_dir / 'metrics.json').write_text(json.dumps({
      **header, **{k: clean(v) for k, v in summary.items() if '/' not in k},
      'per_class': [{k: clean(v) for k, v in r.items()} for r in rows],
      'confusion_matrix': np.asarray(cm).tolist()}, indent=2))
  write_csv(out_dir / 'per_class.csv', rows)
  buf = io.StringIO()
  csv.writer(buf).writerows([[''] + list(class_names)] +
                            [[n] + list(r) for n, r in zip(class_names, np.asarray(cm))])
  (out_dir / 'confusion.csv').write_text(buf.getvalue())
  title = ', '.join(f'{k}={v}' for k, v in header.items())
  (out_dir / 'report.md').write_text(f'# Evaluation\n\n{title}\n\n' +
                                     markdown_table(summary, rows))
  plot_confusion(cm, class_names, out_dir / 'confusion.png', title)
  return summary


def append_history(workdir: str, step: int, values: dict[str, float]) -> None:
  """One JSON line per logged step: the data behind the training-curve plot."""
  line = json.dumps({'step': step, **{k: float(v) for k, v in values.items()
                                      if '/iou/' not in k}})
  path = epath.Path(workdir) / HISTORY
  if '://' in str(path):  # cloud storage (gs://) cannot append: rewrite the object
    path.write_text((path.read_text() if path.exists() else '') + line + '\n')
  else:
    with open(path, 'a') as f:
      f.write(line + '\n')


def trim_history(workdir: str, last_step: int) -> None:
  """Drops the rows after `last_step` (a resumed run redoes those steps), and a torn last line."""
  path = epath.Path(workdir) / HISTORY
  if not path.exists():
    return
  lines = path.read_text().splitlines()
  kept = [line for line in lines if _row_step(line) is not None and _row_step(line) <= last_step]
  if len(kept) != len(lines):
    workdir_lib.write_atomic(path, ''.join(line + '\n' for line in kept))


def _row_step(line: str) -> int | None:
  try:
    return int(json.loads(line)['step'])
  except (ValueError, KeyError, TypeError):
    return None  # a line torn by a kill mid-write


def read_history(workdir: str) -> list[dict[str, float]]:
  """History rows by step; a step repeated after a resume keeps its last row."""
  path = epath.Path(workdir) / HISTORY
  if not path.exists():
    return []
  by_step: dict[tuple[int, frozenset], dict] = {}
  for line in path.read_text().splitlines():
    if _row_step(line) is not None:
      row = json.loads(line)
      by_step[(row['step'], frozenset(row))] = row
  return sorted(by_step.values(), key=lambda r: r['step'])


def read_eval_results(workdir: str | epath.Path) -> dict[str, Any] | None:
  """A finished run's final evaluation (EVAL_RESULTS), or None while it is unfinished."""
  path = epath.Path(workdir) / EVAL_RESULTS
  return json.loads(path.read_text()) if path.exists() else None


def plot_training_curves(workdir: str, path: epath.Path) -> None:
  rows = read_history(workdir)
  panels = [('loss', ['train/loss', 'eval/loss']),
            ('mean IoU / accuracy', ['eval/mean_iou', 'eval/pixel_accuracy',
                                     'train/pixel_accuracy'])]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, (title, keys) in zip(axes, panels):
    for key in keys:
      pts = [(r['step'], r[key]) for r in rows if key in r]
      if pts:
        ax.plot(*zip(*pts), marker='o' if key.startswith('eval') else None,
                markersize=3, label=key)
    ax.set_xlabel('step')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
