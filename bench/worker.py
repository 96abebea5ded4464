"""One benchmark subject in its own process, driven over stdin/stdout by `bench.run`.

  python -m bench.worker --impl=jax|keras|torch|matmul --mode=train|infer \
      --height=96 --width=128 --batch=32 --dtype=float32|bfloat16

Prints one JSON line when ready (built, compiled, warmed up), then answers
`run N` with the seconds N steps took (compilation and warm-up excluded; the
steps are dispatched back to back and the last result is waited for, so an
accelerator never waits on the host between steps), `info` with peak memory
(host RSS, and the accelerator's peak where there is one), `quit` to exit.
On a GPU, ours and PyTorch run there (XLA_PYTHON_CLIENT_PREALLOCATE=false lets
several workers share it); Keras is a CPU reference here (tensorflow-cpu).
Each subject runs in a separate process so their thread pools do not compete
and each reports its own peak memory.
"""

import argparse
import json
import resource
import sys
import time
from typing import Any, Callable, NamedTuple

import numpy as np


class Subject(NamedTuple):
  step: Callable[[], Any]           # dispatches one step, returns its result
  wait: Callable[[Any], Any]        # waits until a step's result is computed
  flops_per_step: float | None      # XLA cost analysis (ours and matmul only)
  params: int
  device_peak_mb: Callable[[], float | None] | None = None  # accelerator memory
  device: str = 'cpu'               # what the steps run on


def _jax_subject(args):
  import functools
  from configs import default
  from unet_jax import host

  config = default.get_config()
  config.batch_size = config.eval_batch_size = args.batch
  # As main.py: training splits the CPU as config.cpu_devices says (0: auto);
  # evaluation and prediction run on one device.
  config.cpu_devices = args.cpu_devices if args.cpu_devices >= 0 else (
      0 if args.mode == 'train' else 1)
  host.configure_cpu_devices(config)  # before JAX starts

  import jax
  import optax
  from unet_jax import models, parallel, train, views

  config.model = default.lab_model()
  config.model.dtype = args.dtype
  config.model.remat = args.remat
  config.model.upconv_impl, config.model.pool_impl = args.upconv_impl, args.pool_impl
  config.data.image_size = (args.height, args.width)
  config.loss.dice_weight, config.loss.lovasz_weight = args.dice_weight, args.lovasz_weight
  model = models.create_model(config.model, config.data.num_classes)
  state = train.create_train_state(config, model, optax.adam(1e-3), jax.random.key(0))
  rng = np.random.default_rng(0)
  mesh = parallel.create_mesh()  # the batch split over all (CPU) devices, as in train
  replicated, split = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  state = jax.device_put(state, replicated)
  batch = parallel.to_global(
      {'image': rng.integers(0, 256, (args.batch, args.height, args.width, 3), dtype=np.uint8),
       'label': rng.integers(0, 23, (args.batch, args.height, args.width), dtype=np.int32)},
      split)
  if args.mode == 'train':
    fn = jax.jit(functools.partial(train.train_step, config=config,
                                   dropout_key=jax.random.key(1)), donate_argnums=0,
                 in_shardings=(replicated, split), out_shardings=replicated)
    flops = _flops(fn.lower(state, batch))
    holder = {'state': state}

    def step():
      holder['state'], metrics = fn(holder['state'], batch)
      return metrics
  else:
    flops = _flops(views.predict_classes.lower(state, batch['image']))
    predict = lambda: views.predict_classes(state, batch['image'])
    # On a CPU one batch at a time, as Keras and PyTorch run there; a GPU queues them.
    step = (lambda: jax.block_until_ready(predict())) if jax.default_backend() == 'cpu' else predict
  return Subject(step, jax.block_until_ready, flops,
                 sum(x.size for x in jax.tree.leaves(state.params)), jax_device_peak_mb,
                 jax.devices()[0].device_kind)


def _flops(lowered) -> float | None:
  """The whole batch's FLOPs: XLA's cost analysis of the lowered (unpartitioned) step.

  None where the lowered step has none (JAX 0.11 on a GPU): `bench.flops` counts
  them on a CPU then. (A GPU's compiled step leaves out the convolutions that
  run as cuDNN calls, and a compiled split step counts one device's part.)
  """
  cost = lowered.cost_analysis()
  return cost['flops'] if cost else None


def jax_device_peak_mb() -> float | None:
  import jax
  stats = jax.local_devices()[0].memory_stats()  # None on CPU
  return stats['peak_bytes_in_use'] / 2**20 if stats and 'peak_bytes_in_use' in stats else None


def _keras_subject(args):
  import tensorflow as tf
  import keras
  from bench import references

  model = references.keras_unet(args.height, args.width)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.random((args.batch, args.height, args.width, 3), np.float32))
  labels = tf.constant(rng.integers(0, 23, (args.batch, args.height, args.width), np.int32))
  if args.mode == 'train':
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.xla,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    step = lambda: model.train_on_batch(images, labels)
  else:
    predict = tf.function(lambda x: tf.argmax(model(x, training=False), -1),
                          jit_compile=args.xla)
    step = lambda: predict(images).numpy()
  return Subject(step, lambda result: result, None, model.count_params())


def _torch_subject(args):
  import torch
  from bench import references

  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  torch.backends.cudnn.benchmark = True  # as a tuned GPU run would; no effect on CPU
  torch.manual_seed(0)
  model = references.torch_unet().to(device, memory_format=torch.channels_last)
  if args.compile:  # inductor; compiled at the first (untimed) steps
    model = torch.compile(model)
  images = torch.rand(args.batch, 3, args.height, args.width, device=device).to(
      memory_format=torch.channels_last)
  labels = torch.randint(0, 23, (args.batch, args.height, args.width), device=device)
  # bfloat16: autocast, float32 parameters and optimizer, like our bfloat16 option.
  autocast = lambda: torch.autocast(device, torch.bfloat16, enabled=args.dtype == 'bfloat16')
  if args.mode == 'train':
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
      opt.zero_grad(set_to_none=True)
      with autocast():
        loss = loss_fn(model(images).float(), labels)
      loss.backward()
      opt.step()
      return loss
  else:
    model.eval()

    def step():
      with torch.inference_mode(), autocast():
        return model(images).argmax(1)

  def wait(result):
    if device == 'cuda':
      torch.cuda.synchronize()
    return result.cpu()

  peak = (lambda: torch.cuda.max_memory_allocated() / 2**20) if device == 'cuda' else None
  return Subject(step, wait, None, sum(p.numel() for p in model.parameters()), peak,
                 torch.cuda.get_device_name() if device == 'cuda' else 'cpu')


def _matmul_subject(args):
  """The machine's matrix-product rate: a large square product in `args.dtype`."""
  import jax
  import jax.numpy as jnp
  n = 2048 if jax.default_backend() == 'cpu' else 8192  # large enough to fill a GPU
  dtype = jnp.bfloat16 if args.dtype == 'bfloat16' else jnp.float32
  a = jnp.asarray(np.random.default_rng(0).random((n, n), np.float32), dtype)
  fn = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  return Subject(lambda: fn(a), jax.block_until_ready, 2 * n**3, 0,
                 device=jax.devices()[0].device_kind)


SUBJECTS = {'jax': _jax_subject, 'keras': _keras_subject, 'torch': _torch_subject,
            'matmul': _matmul_subject}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser()
  parser.add_argument('--impl', choices=sorted(SUBJECTS), required=True)
  parser.add_argument('--mode', choices=('train', 'infer'), default='train')
  parser.add_argument('--height', type=int, default=96)
  parser.add_argument('--width', type=int, default=128)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  parser.add_argument('--remat', action='store_true')
  parser.add_argument('--upconv_impl', choices=('subpixel', 'xla'), default='subpixel')
  parser.add_argument('--pool_impl', choices=('reshape', 'xla'), default='reshape')
  parser.add_argument('--dice_weight', type=float, default=0.0, help='jax: config.loss')
  parser.add_argument('--lovasz_weight', type=float, default=0.0, help='jax: config.loss')
  parser.add_argument('--cpu_devices', type=int, default=-1,
                      help='jax: XLA devices to split the CPU into; 0: auto, as training '
                      'does; -1: what main.py does (auto to train, 1 to infer)')
  parser.add_argument('--xla', action='store_true', help='Keras: jit_compile=True')
  parser.add_argument('--compile', action='store_true', help='PyTorch: torch.compile the model')
  return parser.parse_args(argv)


def main() -> None:
  args = parse_args()
  subject = SUBJECTS[args.impl](args)
  for _ in range(2):  # compile and warm up
    subject.wait(subject.step())
  print(json.dumps({'ready': True, 'params': subject.params, 'device': subject.device,
                    'flops_per_step': subject.flops_per_step}), flush=True)
  for line in sys.stdin:
    command = line.split()
    if command[0] == 'run':
      start = time.perf_counter()
      for _ in range(int(command[1])):
        result = subject.step()
      subject.wait(result)
      print(json.dumps({'seconds': time.perf_counter() - start}), flush=True)
    elif command[0] == 'info':
      peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
      device_mb = subject.device_peak_mb() if subject.device_peak_mb else None
      print(json.dumps({'peak_rss_mb': peak_mb, 'peak_device_mb': device_mb}), flush=True)
    else:
      return


if __name__ == '__main__':
  main()
