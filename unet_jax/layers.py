"""Layers written in the forms XLA handles well, with the usual parameters.

XLA:CPU runs the gradient of a strided transposed convolution and of
`max_pool` (select-and-scatter) far slower than plain stride-1 convolutions
and reductions. The layers here compute the same function as `nn.ConvTranspose`
and `nn.max_pool` from the same parameters, through those fast forms; tests
compare outputs and gradients against the plain formulations.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from unet_jax.errors import ConfigError

Dtype = Any


def max_pool_2x2(x: jax.Array, impl: str = 'reshape') -> jax.Array:
  """2x2 max pool with stride 2 (NHWC; H, W even).

  `impl='reshape'` is reshape + max, whose gradient is a cheap compare;
  `impl='xla'` is `nn.max_pool`, whose gradient XLA:CPU runs as a slow
  select-and-scatter. Same values and gradients (but for ties).
  """
  if impl == 'xla':
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  if impl != 'reshape':
    raise ConfigError(f"model.pool_impl must be 'reshape' or 'xla', got {impl!r}")
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _same_transpose_pad_before(kernel: int, stride: int) -> int:
  """Leading pad of the dilated input that `lax.conv_transpose` uses for SAME."""
  pad_len = kernel + stride - 2
  return kernel - 1 if stride > kernel - 1 else int(np.ceil(pad_len / 2))


def _phase_taps(kernel: int, stride: int) -> tuple[int, list[list[int]]]:
  """For each output phase, which kernel tap feeds each input offset.

  Output row `stride*i + a` of a SAME transposed conv reads input row
  `i + d` through tap `k` whenever `a + k - pad = stride*d`. Returns the
  smallest offset `d_min` and, per phase `a`, a list over offsets
  `d_min..d_max` of the tap index (-1 where no tap reaches that offset).
  """
  pad = _same_transpose_pad_before(kernel, stride)
  pairs = [(a, k, (a + k - pad) // stride) for a in range(stride)
           for k in range(kernel) if (a + k - pad) % stride == 0]
  d_min = min(d for _, _, d in pairs)
  d_max = max(d for _, _, d in pairs)
  taps = [[-1] * (d_max - d_min + 1) for _ in range(stride)]
  for a, k, d in pairs:
    taps[a][d - d_min] = k
  return d_min, taps


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array,
                            stride: int = 2) -> jax.Array:
  """SAME, stride-`stride` transposed conv as one stride-1 conv + depth-to-space.

  Equals `lax.conv_transpose(x, kernel, (s, s), 'SAME')` (flax's
  `nn.ConvTranspose` without bias): the conv produces all `s*s` sub-pixel
  phases as channels, then they are interleaved into the upsampled image.
  """
  kh, kw, cin, cout = kernel.shape
  if kh != kw:
    raise ValueError(f'square kernels only, got {kernel.shape}')
  d_min, taps = _phase_taps(kh, stride)
  span = len(taps[0])
  # Static gather map from the original kernel into the phase kernel
  # (span, span, cin, s*s*cout); index kh*kw points at an appended zero tap.
  flat = jnp.concatenate(
      [kernel.reshape(kh * kw, cin, cout), jnp.zeros((1, cin, cout), kernel.dtype)])
  index = np.full((span, span, stride, stride), kh * kw, dtype=np.int32)
  for a in range(stride):
    for b in range(stride):
      for dy in range(span):
        for dx in range(span):
          ky, kx = taps[a][dy], taps[b][dx]
          if ky >= 0 and kx >= 0:
            index[dy, dx, a, b] = ky * kw + kx
  phase_kernel = flat[index]  # (span, span, s, s, cin, cout)
  phase_kernel = phase_kernel.transpose(0, 1, 4, 2, 3, 5).reshape(
      span, span, cin, stride * stride * cout)
  pad = ((-d_min, span - 1 + d_min),) * 2
  y = jax.lax.conv_general_dilated(
      x, phase_kernel, (1, 1), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  n, h, w, _ = y.shape
  y = y.reshape(n, h, w, stride, stride, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, h * stride, w * stride, cout)


class UpConv(nn.Module):
  """Stride-2 SAME transposed conv; same params as `nn.ConvTranspose`.

  `impl='subpixel'` runs it as a stride-1 conv + depth-to-space (fast on
  XLA:CPU, identical result); `impl='xla'` uses `lax.conv_transpose`.
  """
  features: int
  kernel_size: int = 3
  impl: str = 'subpixel'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if self.impl == 'subpixel':
      y = subpixel_conv_transpose(x, kernel, stride=2)
    elif self.impl == 'xla':
      y = jax.lax.conv_transpose(x, kernel, (2, 2), 'SAME',
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      raise ConfigError(f"model.upconv_impl must be 'subpixel' or 'xla', got {self.impl!r}")
    return y + bias
