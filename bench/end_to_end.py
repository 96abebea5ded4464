"""The whole training loop against the bare train step, from a finished run and a step benchmark.

  python -m bench.end_to_end --workdir=W --step_results=bench_step.json \
      --wall_s=SECONDS --out=end_to_end.json

End-to-end images/s is the batch size times the run's `steps_per_sec`
(TensorBoard scalars, one per log window: every step, evaluation, checkpoint
and batch fed in that window counted; the first window, which compiles, left
out), median over windows. The bare step is `bench.run`'s median for the same
model, batch and size (its `ours_f32` or `ours_bf16` cell). Also recorded: the
run's final and best validation mIoU and the command's wall time.
Needs no TensorFlow. `launch/device_run.sh` calls it on an accelerator host.
"""

import argparse
import json
import platform
import statistics

import jax
from etils import epath
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util


def steps_per_sec(workdir: str) -> list[float]:
  """The run's steps/s per log window, in step order."""
  events = event_accumulator.EventAccumulator(workdir, size_guidance={'tensors': 0})
  events.Reload()
  if 'steps_per_sec' not in events.Tags()['tensors']:
    raise SystemExit(f'error: {workdir} has no steps_per_sec scalars: is it a finished run?')
  return [float(tensor_util.make_ndarray(t.tensor_proto))
          for t in events.Tensors('steps_per_sec')]


def summarize(workdir: str, step_results: dict, wall_s: float) -> dict:
  config = json.loads((epath.Path(workdir) / 'config.json').read_text())
  dtype = config['model'].get('dtype', 'float32')
  subject = 'ours_bf16' if dtype == 'bfloat16' else 'ours_f32'
  height, width = config['data']['image_size']
  cell = ('train', height, width, config['batch_size'])
  bare = next((c['images_per_s'][subject] for c in step_results['cells']
               if (c['mode'], c['height'], c['width'], c['batch']) == cell
               and subject in c['images_per_s']), None)
  rates = steps_per_sec(workdir)[1:]
  end_to_end = config['batch_size'] * statistics.median(rates) if rates else None
  results = json.loads((epath.Path(workdir) / 'eval_results.json').read_text())
  return {
      'device': str(jax.devices()[0].device_kind), 'platform': platform.platform(),
      'config': {k: config[k] for k in ('batch_size', 'num_epochs', 'num_train_steps')},
      'cell': 'train:{}x{}x{}'.format(*cell[1:]), 'subject': subject,
      'end_to_end_images_per_s': end_to_end, 'bare_step_images_per_s': bare,
      'end_to_end_over_bare': end_to_end / bare if end_to_end and bare else None,
      'log_windows': len(rates), 'wall_s': wall_s, 'final_step': results['step'],
      'mean_iou': results['mean_iou'], 'pixel_accuracy': results['pixel_accuracy'],
      'best_step': results.get('best_step'),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--step_results', required=True, help="bench.run's --out JSON")
  parser.add_argument('--wall_s', type=float, default=float('nan'),
                      help="the training command's wall time, measured by the caller")
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  step_results = json.loads(epath.Path(args.step_results).read_text())
  summary = summarize(args.workdir, step_results, args.wall_s)
  text = json.dumps(summary, indent=2)
  print(text)
  if args.out:
    epath.Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
  main()
