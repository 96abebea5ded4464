"""Input pipeline vs train step: images/s each delivers at 96x128, batch 32, with augmentation.

  python -m bench.pipeline --data_dir=../shared/data/carla_lab/320x240
  python -m bench.pipeline            # generated frames when no data_dir is given

The pipeline is timed alone (`TrainBatches` of configs/carla_plus_w16.py's
augmentation: flips, zoom + crop, colour jitter), then the train steps of
configs/carla.py (the lab model) and configs/carla_plus_w16.py on random batches,
in the same process, interleaved over `--rounds`; medians are reported with
the ratios pipeline / train step, which should stay well above 1 (target 3x).
"""

import argparse
import functools
import json
import os
import resource
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import carla, carla_plus_w16
from unet_jax import models, optim, train
from unet_jax.data import augmentation, loading, synthetic


def pipeline_rate(data_dir: str, batch: int, steps: int) -> callable:
  config = carla_plus_w16.get_config()
  config.batch_size = batch
  if not data_dir:
    s = config.data.synthetic
    data_dir = synthetic.generate(os.path.join(tempfile.mkdtemp(), 'frames'), num_clips=12,
                                  frames_per_clip=12, height=s.height, width=s.width, seed=0)
  data = loading.load_split(data_dir, 'train', config.data,
                                   size=augmentation.cache_size(config.data))
  batches = augmentation.TrainBatches(data, batch, 0, config.data.augment,
                                        config.data.image_size)
  rounds = iter(range(1, 10**6))

  def run() -> float:
    # A fresh stream each round (at a new step), its start-up timed too: a
    # stream kept across rounds would fill its prefetch buffers while the
    # train steps are being timed, and look faster than it is.
    start = time.perf_counter()
    stream = batches.iterate(next(rounds) * 1000)
    for _ in range(steps):
      next(stream)
    return steps * batch / (time.perf_counter() - start)
  return run


def step_rate(config, batch: int, steps: int) -> callable:
  config.batch_size = batch
  model = models.create_model(config.model, config.data.num_classes)
  tx, _ = optim.create_optimizer(config.optimizer, 1000)
  holder = {'state': train.create_train_state(config, model, tx, jax.random.key(0))}
  h, w = config.data.image_size
  rng = np.random.default_rng(0)
  data = {'image': jnp.asarray(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)),
          'label': jnp.asarray(rng.integers(0, 23, (batch, h, w), dtype=np.int32))}
  step = jax.jit(functools.partial(train.train_step, config=config,
                                   dropout_key=jax.random.key(1)), donate_argnums=0)

  def run() -> float:
    start = time.perf_counter()
    for _ in range(steps):
      holder['state'], metrics = step(holder['state'], data)
    jax.block_until_ready(metrics)
    return steps * batch / (time.perf_counter() - start)
  run()  # compile
  return run


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default='')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--out', default='')
  parser.add_argument('--pipeline_only', action='store_true',
                      help='time the pipeline alone (bench.run compares it with its own steps)')
  args = parser.parse_args()
  subjects = {'pipeline': pipeline_rate(args.data_dir, args.batch, 20)}
  if not args.pipeline_only:
    subjects.update(train_step_lab=step_rate(carla.get_config(), args.batch, 2),
                    train_step_plus=step_rate(carla_plus_w16.get_config(), args.batch, 3))
  rates = {name: [] for name in subjects}
  for r in range(args.rounds):
    for name, run in subjects.items():
      rates[name].append(run())
    print(f'round {r + 1}: ' + ', '.join(f'{n} {v[-1]:.1f} img/s' for n, v in rates.items()),
          flush=True)
  med = {n: statistics.median(v) for n, v in rates.items()}
  result = {'images_per_s': med, 'all_images_per_s': rates, 'batch': args.batch,
            'data_dir': args.data_dir or 'generated',
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  if not args.pipeline_only:
    result.update(pipeline_over_lab_step=med['pipeline'] / med['train_step_lab'],
                  pipeline_over_plus_step=med['pipeline'] / med['train_step_plus'])
  print(json.dumps(result, indent=2))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  main()
