"""Training and inference speed of the lab U-Net: ours (float32, bfloat16) vs Keras and PyTorch.

  python -m bench.run                       # all cells, ~15 minutes on 2 CPU cores
  python -m bench.run --cells=train:96x128x32 --rounds=3 --out=/tmp/bench.json

Each cell (mode, input size, batch) starts one worker process per subject
(`bench/worker.py`): ours in float32 and bfloat16, Keras (TensorFlow, oneDNN),
PyTorch channels-last. After compilation and warm-up the subjects are timed
interleaved, A B C D A B C D ..., each window at least `--window_s` seconds,
so a noisy shared machine slows all of them alike; the table gives medians
over rounds, the ratios ours / reference, peak memory (max RSS) per worker,
and our achieved FLOP/s (XLA cost analysis of the whole jitted step) against the
matrix-product rate measured at the start of the same run. PyTorch is
optional (`pip install -r bench/requirements.txt`); without it its column is
left out. Ours runs as main.py would: training with the CPU split into
config.cpu_devices XLA devices (auto: 2 on a 2-core machine), inference on one.
Last, the input pipeline (bench.pipeline: tf.data, batch 32 at 96x128 with
carla_plus's augmentation, on --pipeline_data_dir) is timed in its own
process, and compared with our float32 train step at 96x128 b32.

On a GPU (README "On a GPU", docs/bench_gpu.json), ours and PyTorch run on it,
several workers sharing it, and the FLOPs are counted on a CPU afterwards:
  XLA_PYTHON_CLIENT_PREALLOCATE=false python -m bench.run --pipeline_data_dir=none \
      --cells=train:192x256x64,train:384x512x32 --subjects=ours_f32,ours_bf16,torch,torch_bf16
  python -m bench.flops --results=bench/results.json

What each of our speed-ups contributes, one cell (docs/bench_contributions.json):
  python -m bench.run --cells=train:96x128x32 --rounds=3 \
      --subjects=plain_f32,subpixel_f32,fastlayers_f32,fastlayers_f32_cpu2
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FRAMES = os.path.join(REPO, '..', 'shared', 'data', 'carla_lab', '320x240')
CELLS = ('train:96x128x32', 'train:192x256x8', 'infer:96x128x32', 'infer:192x256x8')
SUBJECTS = {  # name -> worker flags
    'ours_f32': ['--impl=jax', '--dtype=float32'],
    'ours_bf16': ['--impl=jax', '--dtype=bfloat16'],
    'keras': ['--impl=keras'],
    'torch': ['--impl=torch'],
    'torch_bf16': ['--impl=torch', '--dtype=bfloat16'],  # autocast; for GPUs
    # torch.compile (inductor): the strongest PyTorch peer on a GPU.
    'torch_compile': ['--impl=torch', '--compile'],
    'torch_compile_bf16': ['--impl=torch', '--compile', '--dtype=bfloat16'],
    # Not run by default (--subjects=...): what each speed-up contributes, from
    # the plain layers on one CPU device to ours (fast layers, CPU split in 2).
    'plain_f32': ['--impl=jax', '--upconv_impl=xla', '--pool_impl=xla', '--cpu_devices=1'],
    'subpixel_f32': ['--impl=jax', '--pool_impl=xla', '--cpu_devices=1'],
    'fastlayers_f32': ['--impl=jax', '--cpu_devices=1'],
    'fastlayers_f32_cpu2': ['--impl=jax', '--cpu_devices=2'],
    # What the extra loss terms cost beside cross-entropy (ours_f32).
    'dice_f32': ['--impl=jax', '--dice_weight=0.5'],
    'lovasz_f32': ['--impl=jax', '--lovasz_weight=1'],
}
DEFAULT_SUBJECTS = ('ours_f32', 'ours_bf16', 'keras', 'torch')


def _child_env() -> dict[str, str]:
  """Environment of a benchmark child process: this repo importable, TensorFlow quiet."""
  path = os.pathsep.join(p for p in (REPO, os.environ.get('PYTHONPATH')) if p)
  return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL='3')


class Worker:
  """A `bench.worker` process, started and warmed up."""

  def __init__(self, flags: list[str]):
    # Its log goes to a file, read back only to say why a worker died.
    self.log = tempfile.TemporaryFile('w+')
    self.proc = subprocess.Popen([sys.executable, '-m', 'bench.worker', *flags], cwd=REPO,
                                 env=_child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self.log, text=True)
    self._ready = None

  @property
  def ready(self) -> dict:
    """The worker's start-up report; waits for it (building and compiling are not timed)."""
    if self._ready is None:
      self._ready = self._read()
    return self._ready

  def _read(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      code = self.proc.wait()
      self.log.seek(0)
      raise RuntimeError(f'benchmark worker {" ".join(self.proc.args[3:])} died (exit {code}); '
                         f'the end of its log:\n{self.log.read()[-3000:]}')
    return json.loads(line)

  def ask(self, command: str) -> dict:
    self.proc.stdin.write(command + '\n')
    self.proc.stdin.flush()
    return self._read()

  def close(self) -> None:
    with contextlib.suppress(OSError):
      self.proc.stdin.write('quit\n')
      self.proc.stdin.close()
    self.proc.wait(timeout=60)
    self.log.close()


def measure_matmul(rounds: int) -> tuple[dict[str, float], str]:
  """Matrix-product GFLOP/s of JAX here, float32 and bfloat16 inputs; and JAX's device."""
  out = {}
  for dtype in ('float32', 'bfloat16'):
    worker = Worker(['--impl=matmul', f'--dtype={dtype}'])
    flops = worker.ready['flops_per_step']
    out[dtype] = max(flops * 5 / worker.ask('run 5')['seconds'] for _ in range(rounds)) / 1e9
    worker.close()
  return out, worker.ready['device']


def time_cell(cell: str, subjects: list[str], rounds: int, window_s: float) -> dict:
  """Interleaved timing of `subjects` on one cell; images/s medians and worker stats."""
  mode, shape = cell.split(':')
  height, width, batch = (int(v) for v in shape.split('x'))
  common = [f'--mode={mode}', f'--height={height}', f'--width={width}', f'--batch={batch}']
  workers = {}
  try:
    for name in subjects:  # started together; timing begins once all are ready
      workers[name] = Worker(SUBJECTS[name] + common)
    for name, worker in workers.items():
      print(f'  {cell} {name}: ready ({worker.ready["params"]:,} parameters)', flush=True)
    params = {n: w.ready['params'] for n, w in workers.items()}
    if len(set(params.values())) != 1:
      raise AssertionError(f'parameter counts differ: {params}')
    # Steps per window from one probe step each, so every window lasts ~window_s.
    steps = {n: max(1, round(window_s / w.ask('run 1')['seconds'])) for n, w in workers.items()}
    rates = {n: [] for n in workers}
    for r in range(rounds):
      for name, worker in workers.items():
        rates[name].append(steps[name] * batch / worker.ask(f'run {steps[name]}')['seconds'])
      print(f'  {cell} round {r + 1}/{rounds}: ' +
            ', '.join(f'{n} {v[-1]:.1f}' for n, v in rates.items()) + ' img/s', flush=True)
    return {
        'mode': mode, 'height': height, 'width': width, 'batch': batch, 'params': params,
        'images_per_s': {n: statistics.median(v) for n, v in rates.items()},
        'all_images_per_s': rates,
        **_peak_memory(workers),
        'flops_per_image': {n: w.ready['flops_per_step'] / batch
                            for n, w in workers.items() if w.ready['flops_per_step']},
    }
  finally:
    for worker in workers.values():
      worker.close()


def _peak_memory(workers: dict[str, Worker]) -> dict:
  info = {n: w.ask('info') for n, w in workers.items()}
  out = {'peak_rss_mb': {n: i['peak_rss_mb'] for n, i in info.items()}}
  device = {n: i['peak_device_mb'] for n, i in info.items() if i.get('peak_device_mb')}
  return {**out, 'peak_device_mb': device} if device else out


def measure_pipeline(data_dir: str, rounds: int) -> dict:
  """bench.pipeline's tf.data input pipeline (batch 32, 96x128, augmented), in its own process."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'pipeline.json')
    subprocess.run([sys.executable, '-m', 'bench.pipeline', '--pipeline_only',
                    f'--data_dir={data_dir}', f'--rounds={rounds}', f'--out={out}'], cwd=REPO,
                   env=_child_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
      return json.load(f)


def table(results: dict) -> str:
  """The markdown table of a results dict."""
  subjects = [s for s in SUBJECTS if any(s in c['images_per_s'] for c in results['cells'])]
  pairs = [('ours_f32', 'keras'), ('ours_f32', 'torch'), ('ours_f32', 'torch_compile'),
           ('ours_bf16', 'keras'), ('ours_bf16', 'torch'), ('ours_bf16', 'torch_bf16'),
           ('ours_bf16', 'torch_compile_bf16')]
  ratios = [(o, r) for o, r in pairs if r in subjects]
  device_memory = any('peak_device_mb' in c for c in results['cells'])
  head = (['cell'] + [f'{s} img/s' for s in subjects] + [f'{o}/{r}' for o, r in ratios]
          + ['ours_f32 GFLOP/s (% of f32 matmul)', 'ours_bf16 GFLOP/s (% of bf16 matmul)',
             'peak MB (' + ', '.join(subjects) + ')']
          + (['peak device MB'] if device_memory else []))
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  peak = results['matmul_gflops']
  for c in results['cells']:
    ips = c['images_per_s']
    row = [f"{c['mode']} {c['height']}x{c['width']} b{c['batch']}"]
    row += [f'{ips[s]:.2f}' if s in ips else '-' for s in subjects]
    row += [f'{ips[o] / ips[r]:.2f}x' if o in ips and r in ips else '-' for o, r in ratios]
    for name, dtype in (('ours_f32', 'float32'), ('ours_bf16', 'bfloat16')):
      if name in ips and name in c['flops_per_image']:
        gflops = ips[name] * c['flops_per_image'][name] / 1e9
        row.append(f'{gflops:.0f} ({100 * gflops / peak[dtype]:.0f} %)')
      else:
        row.append('-')
    row.append(', '.join(f"{c['peak_rss_mb'][s]:.0f}" for s in subjects if s in ips))
    if device_memory:
      row.append(', '.join(f"{n} {v:.0f}" for n, v in c.get('peak_device_mb', {}).items()))
    lines.append('| ' + ' | '.join(row) + ' |')
  if 'pipeline' in results:
    p = results['pipeline']
    rate = p['images_per_s']['pipeline']
    train = next((c['images_per_s'].get('ours_f32') for c in results['cells']
                  if (c['mode'], c['height'], c['width'], c['batch']) == ('train', 96, 128, 32)),
                 None)
    lines.append(f"\nInput pipeline (batch 32, 96x128, augmented; {p['data_dir']}): "
                 f'{rate:.0f} img/s' + (f', {rate / train:.0f}x our float32 train step'
                                        if train else ''))
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cells', default=','.join(CELLS))
  parser.add_argument('--subjects', default=','.join(DEFAULT_SUBJECTS))
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--window_s', type=float, default=4.0)
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results.json'))
  parser.add_argument('--pipeline_data_dir', default=SHARED_FRAMES,
                      help="frames for the input-pipeline row ('' = generated; 'none' = skip)")
  args = parser.parse_args()
  subjects = [s for s in args.subjects.split(',') if s]
  if importlib.util.find_spec('torch') is None and any(s.startswith('torch') for s in subjects):
    print('PyTorch is not installed (pip install -r bench/requirements.txt): leaving it out.')
    subjects = [s for s in subjects if not s.startswith('torch')]
  start = time.time()
  results = {'machine': {'cpu': _cpu_name(), 'cores': os.cpu_count(),
                         'python': platform.python_version()},
             'versions': _versions(subjects), 'rounds': args.rounds}
  results['matmul_gflops'], results['machine']['jax_device'] = measure_matmul(args.rounds)
  print('matrix product GFLOP/s:', results['matmul_gflops'], flush=True)
  results['cells'], results['failed_cells'] = [], {}
  for cell in (c for c in args.cells.split(',') if c):
    try:
      results['cells'].append(time_cell(cell, subjects, args.rounds, args.window_s))
    except RuntimeError as e:  # e.g. out of memory at a large size: the other cells still run
      print(f'  {cell} FAILED: {e}', flush=True)
      results['failed_cells'][cell] = str(e)
    save(results, args.out)  # a run cut short keeps the cells it finished
  if args.pipeline_data_dir != 'none':
    data_dir = args.pipeline_data_dir if os.path.isdir(args.pipeline_data_dir) else ''
    results['pipeline'] = measure_pipeline(data_dir, args.rounds)
  results['wall_s'] = time.time() - start
  save(results, args.out)
  print(table(results))
  if results['failed_cells']:
    print('Failed cells (see above):', ', '.join(results['failed_cells']))
  print(f'Saved {args.out} ({results["wall_s"] / 60:.1f} min)')


def save(results: dict, path: str) -> None:
  """Writes `results` to `path` whole (a temporary file renamed over it)."""
  with open(path + '.tmp', 'w') as f:
    json.dump(results, f, indent=2)
  os.replace(path + '.tmp', path)


def _cpu_name() -> str:
  with contextlib.suppress(OSError):
    for line in open('/proc/cpuinfo'):
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  return platform.processor()


def _versions(subjects: list[str]) -> dict[str, str]:
  from importlib import metadata
  names = ['jax', 'jaxlib', 'flax', 'tensorflow-cpu', 'keras'] + (
      ['torch'] if any(s.startswith('torch') for s in subjects) else [])
  out = {}
  for name in names:
    with contextlib.suppress(metadata.PackageNotFoundError):
      out[name] = metadata.version(name)
  return out


if __name__ == '__main__':
  main()
