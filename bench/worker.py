"""One benchmark subject in its own process, driven over stdin/stdout by `bench.run`.

  python -m bench.worker --impl=jax|keras|torch|matmul --mode=train|infer \
      --height=96 --width=128 --batch=32 --dtype=float32|bfloat16

Prints one JSON line when ready (built, compiled, warmed up), then answers
`run N` with the seconds N steps took (compilation and warm-up excluded,
results waited for), `info` with peak memory and FLOPs, `quit` to exit.
Each subject runs in a separate process so their thread pools do not compete
and each reports its own peak memory.
"""

import argparse
import json
import resource
import sys
import time

import numpy as np


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
  import jax.numpy as jnp
  import optax
  from unet_jax import models, parallel, train

  config.model = default.lab_model()
  config.model.dtype = args.dtype
  config.model.remat = args.remat
  config.model.upconv_impl, config.model.pool_impl = args.upconv_impl, args.pool_impl
  config.data.image_size = (args.height, args.width)
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
    # The lowered (not yet partitioned) step: the whole batch's FLOPs, however it is split.
    flops = fn.lower(state, batch).cost_analysis()['flops']
    holder = {'state': state}

    def step():
      holder['state'], metrics = fn(holder['state'], batch)
      return metrics
  else:
    flops = train.predict_classes.lower(state, batch['image']).cost_analysis()['flops']
    step = lambda: train.predict_classes(state, batch['image'])
  return (lambda: jax.block_until_ready(step())), flops, sum(
      x.size for x in jax.tree.leaves(state.params))


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
  return step, None, model.count_params()


def _torch_subject(args):
  import torch
  from bench import references

  torch.manual_seed(0)
  model = references.torch_unet().to(memory_format=torch.channels_last)
  images = torch.rand(args.batch, 3, args.height, args.width).to(
      memory_format=torch.channels_last)
  labels = torch.randint(0, 23, (args.batch, args.height, args.width))
  if args.mode == 'train':
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(model(images), labels)
      loss.backward()
      opt.step()
      return loss.item()
  else:
    model.eval()

    def step():
      with torch.inference_mode():
        return model(images).argmax(1)
  return step, None, sum(p.numel() for p in model.parameters())


def _matmul_subject(args):
  """The machine's matrix-product rate: a large square product in `args.dtype`."""
  import jax
  import jax.numpy as jnp
  n = 2048
  dtype = jnp.bfloat16 if args.dtype == 'bfloat16' else jnp.float32
  a = jnp.asarray(np.random.default_rng(0).random((n, n), np.float32), dtype)
  fn = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  return (lambda: jax.block_until_ready(fn(a))), 2 * n**3, 0


SUBJECTS = {'jax': _jax_subject, 'keras': _keras_subject, 'torch': _torch_subject,
            'matmul': _matmul_subject}


def main() -> None:
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
  parser.add_argument('--cpu_devices', type=int, default=-1,
                      help='jax: XLA devices to split the CPU into; 0: auto, as training '
                      'does; -1: what main.py does (auto to train, 1 to infer)')
  parser.add_argument('--xla', action='store_true', help='Keras: jit_compile=True')
  args = parser.parse_args()
  step, flops, params = SUBJECTS[args.impl](args)
  for _ in range(2):  # compile and warm up
    step()
  print(json.dumps({'ready': True, 'params': params, 'flops_per_step': flops}), flush=True)
  for line in sys.stdin:
    command = line.split()
    if command[0] == 'run':
      start = time.perf_counter()
      for _ in range(int(command[1])):
        step()
      print(json.dumps({'seconds': time.perf_counter() - start}), flush=True)
    elif command[0] == 'info':
      peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
      print(json.dumps({'peak_rss_mb': peak_mb}), flush=True)
    else:
      return


if __name__ == '__main__':
  main()
