"""Where XLA:CPU spends a lab U-Net train step: each 3x3 conv's forward, input and weight gradients.

  python -m bench.conv_profile [--batch=32 --height=96 --width=128]

For every distinct 3x3 conv of the lab model at the given input, times the
forward conv, the gradient with respect to its input (dx) and with respect
to its kernel (dW) as XLA compiles them, and prints GFLOP/s and milliseconds
beside a large matrix product's rate. A low dW column is the weight gradient
(a convolution whose 'kernel' is the whole activation map) running far from
the matrix-product rate. The totals count each shape as often as a train
step runs it (the 18 3x3 convs and the head conv; the 1x1 head and the
up-convs aside). They are *not* a floor on the step: each conv is compiled
alone here, and inside the whole jitted step XLA runs some of them faster
(measured: these totals came to 10.2 s for 32 images where the whole step
took 7.4 s), so read the columns as where XLA:CPU is slow, not as a sum.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bench.references import WIDTHS


def _median_seconds(fn, *args, repeats: int = 5) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def conv(x, k):
  return lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def lab_convs(height: int, width: int) -> list[tuple[int, int, int, int, int]]:
  """(h, w, in, out, times per step) of each distinct 3x3 conv of the lab model."""
  shapes = []
  cin = 3
  deepest = len(WIDTHS) - 1
  for level, features in enumerate(WIDTHS):
    h, w = height >> level, width >> level
    # f->f: encoder block, decoder block (not at the deepest level), head conv (level 0).
    repeats = 1 + (level < deepest) + (level == 0)
    shapes += [(h, w, cin, features, 1), (h, w, features, features, repeats)]
    if level < deepest:
      shapes += [(h, w, 2 * features, features, 1)]  # decoder, after the skip concat
    cin = features
  return shapes


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--height', type=int, default=96)
  parser.add_argument('--width', type=int, default=128)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.random((2048, 2048), np.float32))
  peak = 2 * 2048**3 / _median_seconds(lambda a: a @ a, a) / 1e9
  print(f'matrix product 2048^3 float32: {peak:.0f} GFLOP/s')
  print('| conv (HxW, in->out) | fwd GFLOP/s | dx GFLOP/s | dW GFLOP/s | fwd / dx / dW ms |')
  print('|---|---|---|---|---|')
  total = {'fwd': 0.0, 'dx': 0.0, 'dW': 0.0}
  for h, w, cin, cout, repeats in lab_convs(args.height, args.width):
    x = jnp.asarray(rng.standard_normal((args.batch, h, w, cin), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32) * 0.1)
    g = jnp.asarray(rng.standard_normal((args.batch, h, w, cout), np.float32))
    flops = 2 * args.batch * h * w * 9 * cin * cout
    t = {'fwd': _median_seconds(conv, x, k),
         'dx': _median_seconds(lambda k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0], k, g),
         'dW': _median_seconds(lambda x, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0], x, g)}
    for key in total:
      if not (key == 'dx' and cin == 3):  # no gradient flows into the images
        total[key] += repeats * t[key]
    print(f'| {h}x{w}, {cin}->{cout} (x{repeats}) | ' + ' | '.join(f'{flops / t[key] / 1e9:.0f}'
                                                     for key in ('fwd', 'dx', 'dW'))
          + ' | ' + ' / '.join(f'{1e3 * t[key]:.0f}' for key in ('fwd', 'dx', 'dW')) + ' |',
          flush=True)
  print(f'3x3 convs of a train step of {args.batch} images, each compiled alone, seconds: '
        + ', '.join(f'{k} {v:.2f}' for k, v in total.items())
        + f' (together {sum(total.values()):.2f} s; not a floor, see the docstring)')


if __name__ == '__main__':
  main()
