"""On-device augmentation: its cost in the train step, and the host side that feeds it.

  python -m bench.augment_on_device --out=docs/bench_augment.json          # CPU, here
  python -m bench.augment_on_device --cells=96x128x32,192x256x64 \
      --dtypes=float32,bfloat16 --out=$OUT/bench_augment_gpu.json          # on a GPU

Needs no TensorFlow (it runs on accelerator hosts that have none).

1. Train step: the lab model's step on a batch already augmented at the training
   size (`bare`, what the tf.data path hands the device) against the same step
   with `augment.on_device` (frames at cache size, augmented inside the step with
   configs/carla_plus_w16.py's settings), interleaved over `--rounds` in one
   process; medians and their ratio.
2. Host side: what `TrainBatches.frames` (gather by index, numpy) and the
   transfer to the devices deliver on one thread, i.e. per CPU core, with no
   model; against the step rates of the accelerator in docs/bench_gpu.json.
Peak host RSS (and the accelerator's peak) is reported beside the speeds.
"""

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import time

import jax
import numpy as np
import optax

from bench import worker
from configs import carla_plus_w16
from configs import default
from unet_jax import host, models, parallel, train_state
from unet_jax import train_step as train_step_lib
from unet_jax.data import augmentation, loading


def _config(height: int, width: int, batch: int, dtype: str, on_device: bool):
  config = default.get_config()
  config.model = default.lab_model()
  config.model.dtype = dtype
  config.data.image_size = (height, width)
  config.batch_size = batch
  config.data.augment = carla_plus_w16.get_config().data.augment
  config.data.augment.on_device = on_device
  return config


def _frames(config, num_frames: int, seed: int = 0) -> loading.SplitData:
  """Random uint8 frames at the augmentation's cache size (content does not change speed)."""
  rng = np.random.default_rng(seed)
  h, w = augmentation.cache_size(config.data)
  return loading.SplitData(
      rng.integers(0, 256, (num_frames, h, w, 3), dtype=np.uint8),
      rng.integers(0, config.data.num_classes, (num_frames, h, w), dtype=np.uint8),
      tuple(map(str, range(num_frames))))


def _step_fn(config, mesh):
  model = models.create_model(config.model, config.data.num_classes)
  replicated, split = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  state = jax.device_put(train_state.create_train_state(
      config, model, optax.adam(1e-3), jax.random.key(0)), replicated)
  fn = jax.jit(functools.partial(train_step_lib.train_step, config=config,
                                 dropout_key=jax.random.key(1)),
               in_shardings=(replicated, split), out_shardings=replicated, donate_argnums=0)
  return fn, state


def _time_steps(fn, holder, batch, steps: int) -> float:
  start = time.perf_counter()
  for _ in range(steps):
    holder['state'], metrics = fn(holder['state'], batch)
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / steps


def step_cell(height: int, width: int, batch: int, dtype: str, steps: int,
              rounds: int) -> dict:
  """Seconds per step, bare vs with on-device augmentation, interleaved."""
  mesh = parallel.create_mesh()
  split = parallel.batch_sharding(mesh)
  subjects = {}
  for name, on_device in (('bare', False), ('on_device', True)):
    config = _config(height, width, batch, dtype, on_device)
    fn, state = _step_fn(config, mesh)
    data = _frames(config, max(batch * 2, 64))
    frames = augmentation.TrainBatches(data, batch, 0, config.data.augment,
                                       config.data.image_size).frames(0)
    host_batch = next(frames)
    if not on_device:  # the batch as tf.data would deliver it: augmented, at size
      host_batch = {'image': host_batch['image'][:, :height, :width],
                    'label': host_batch['label'][:, :height, :width].astype(np.int32)}
    device_batch = parallel.to_global(host_batch, split)
    holder = {'state': state}
    _time_steps(fn, holder, device_batch, 2)  # compile and warm up
    subjects[name] = (fn, holder, device_batch)
  times = {name: [] for name in subjects}
  for _ in range(rounds):
    for name, (fn, holder, device_batch) in subjects.items():
      times[name].append(_time_steps(fn, holder, device_batch, steps))
  median = {name: statistics.median(t) for name, t in times.items()}
  return {'height': height, 'width': width, 'batch': batch, 'dtype': dtype,
          'seconds_per_step': median, 'all_seconds_per_step': times,
          'images_per_s': {name: batch / t for name, t in median.items()},
          'on_device_over_bare': median['on_device'] / median['bare']}


def host_feed(height: int, width: int, batch: int, batches: int) -> dict:
  """Images/s one thread gathers and transfers (to the devices, sharded), no model."""
  config = _config(height, width, batch, 'float32', True)
  data = _frames(config, 512)
  split = parallel.batch_sharding(parallel.create_mesh())
  frames = augmentation.TrainBatches(data, batch, 0, config.data.augment,
                                     config.data.image_size).frames(0)
  jax.block_until_ready(parallel.to_global(next(frames), split))
  start = time.perf_counter()
  for _ in range(batches):
    out = parallel.to_global(next(frames), split)
  jax.block_until_ready(out)
  seconds = time.perf_counter() - start
  return {'height': height, 'width': width, 'batch': batch,
          'cache_size': list(augmentation.cache_size(config.data)),
          'images_per_s_per_core': batch * batches / seconds}


def _peaks() -> dict:
  return {'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          'peak_device_mb': worker.jax_device_peak_mb()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cells', default='96x128x32', help='HxWxBATCH,... for the step')
  parser.add_argument('--dtypes', default='float32')
  parser.add_argument('--feed_cells', default='96x128x32,192x256x64')
  parser.add_argument('--steps', type=int, default=5, help='steps per timed round')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--gpu_table', default='docs/bench_gpu.json')
  parser.add_argument('--out', default='')
  args = parser.parse_args()

  cells = [tuple(map(int, c.split('x'))) for c in args.cells.split(',') if c]
  feed_cells = [tuple(map(int, c.split('x'))) for c in args.feed_cells.split(',') if c]
  # As main.py: the CPU split into devices as the batch allows (no effect on a GPU).
  host.configure_cpu_devices(_config(*cells[0], 'float32', False))
  result = {'machine': {'device': jax.devices()[0].device_kind, 'devices': jax.device_count(),
                        'cpu_cores': len(os.sched_getaffinity(0)), 'python': platform.python_version(),
                        'jax': jax.__version__},
            'date': time.strftime('%Y-%m-%d'), 'steps': [], 'host_feed': []}
  for h, w, b in feed_cells:
    cell = host_feed(h, w, b, batches=max(20, 2000 // b))
    result['host_feed'].append(cell)
    print(f'host feed {h}x{w} batch {b}: {cell["images_per_s_per_core"]:,.0f} img/s per core',
          flush=True)
  for h, w, b in cells:
    for dtype in args.dtypes.split(','):
      cell = step_cell(h, w, b, dtype, args.steps, args.rounds)
      result['steps'].append(cell)
      ips = cell['images_per_s']
      print(f'train step {h}x{w} batch {b} {dtype}: bare {ips["bare"]:,.1f} img/s, '
            f'with on-device augmentation {ips["on_device"]:,.1f} img/s '
            f'(time x{cell["on_device_over_bare"]:.3f})', flush=True)
      _write(result, args.out)  # a run cut short keeps the cells it measured
  _compare_with_gpu_steps(result, args.gpu_table)
  result.update(_peaks())
  print(f'peak RSS {result["peak_rss_mb"]:,.0f} MB, peak device memory '
        f'{result["peak_device_mb"]} MB')
  _write(result, args.out)


def _write(result: dict, path: str) -> None:
  if path:
    with open(path, 'w') as f:
      json.dump(result, f, indent=2)


def _compare_with_gpu_steps(result: dict, gpu_table: str) -> None:
  """Cores the host side needs to keep up with each measured GPU step (bench_gpu.json)."""
  try:
    with open(gpu_table) as f:
      gpu = json.load(f)
  except OSError:
    return
  rows = []
  for feed in result['host_feed']:
    for cell in gpu['cells']:
      if (cell['mode'], cell['height'], cell['width']) != ('train', feed['height'],
                                                           feed['width']):
        continue
      for subject in ('ours_f32', 'ours_bf16'):
        if subject in cell['images_per_s']:
          need = cell['images_per_s'][subject]
          rows.append({'height': feed['height'], 'width': feed['width'],
                       'gpu_batch': cell['batch'], 'gpu_subject': subject,
                       'gpu_step_images_per_s': need,
                       'cores_needed': need / feed['images_per_s_per_core']})
          print(f'  {feed["height"]}x{feed["width"]}: the H200 {subject} step at batch '
                f'{cell["batch"]} takes {need:,.0f} img/s: '
                f'{need / feed["images_per_s_per_core"]:.2f} cores of host feed')
  result['cores_needed_for_gpu_steps'] = rows


if __name__ == '__main__':
  main()
