"""The U-Net, built from `config.model`.

`UNet` generalises the lab's Keras model: `len(widths)` levels (depth =
`len(widths) - 1` down steps), `convs_per_block` 3x3 ReLU convs per block,
optional normalization, dropout per level, upsampling by transposed conv or
resize + conv, a 3x3 conv + 1x1 conv head, and optionally an internal
resize of the input (`input_scale`). The `lab` preset in
`configs/default.py` reproduces the lab model exactly (8,640,471 parameters at
23 classes).
"""

import fractions
import itertools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from unet_jax import layers
from unet_jax.errors import ConfigError

Dtype = Any

NORMS = ('none', 'batch', 'group')
UPSAMPLES = ('transpose', 'resize')


class ConvBlock(nn.Module):
  """`num_convs` x (3x3 conv -> norm -> ReLU), then dropout."""
  features: int
  num_convs: int = 2
  norm: str = 'none'
  group_size: int = 8
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for _ in range(self.num_convs):
      x = nn.Conv(self.features, (3, 3), padding='SAME', dtype=self.dtype,
                  use_bias=self.norm == 'none',
                  kernel_init=nn.initializers.he_normal())(x)
      if self.norm == 'batch':
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         dtype=self.dtype)(x)
      elif self.norm == 'group':
        x = nn.GroupNorm(num_groups=None, group_size=min(self.group_size, self.features),
                         dtype=self.dtype)(x)
      x = nn.relu(x)
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class UNet(nn.Module):
  """U-Net mapping (N, H, W, 3) images to (N, H, W, num_classes) float32 logits.

  Integer (uint8) images are scaled to [0, 1] inside the model, so callers
  and exported functions feed raw pixels. With `input_scale` != 1 the
  convolutions run on the image resized by that factor and the logits are
  resized back to H x W. H and W must be multiples of `input_multiple`
  (2**depth at scale 1); other sizes raise a ConfigError (a ValueError) when
  the model is built.
  """
  num_classes: int
  widths: Sequence[int] = (32, 64, 128, 256, 512)
  convs_per_block: int = 2
  norm: str = 'none'
  group_size: int = 8
  dropout: Sequence[float] = (0.0, 0.0, 0.0, 0.3, 0.3)
  upsample: str = 'transpose'
  upconv_impl: str = 'subpixel'
  pool_impl: str = 'reshape'
  dtype: Dtype = jnp.float32
  remat: bool = False  # recompute block activations in the backward pass: less memory
  input_scale: float = 1.0  # run the U-Net on the image resized by this; logits come back at H x W

  @property
  def depth(self) -> int:
    return len(self.widths) - 1

  @property
  def _scale(self) -> fractions.Fraction:
    # Exact, so that 800 * 1.1 is 880 pixels, not 880.0000000000001.
    return fractions.Fraction(self.input_scale).limit_denominator(1000)

  def working_size(self, h: int, w: int) -> tuple[int, int]:
    """(H, W) the convolutions see: the input's, times `input_scale`."""
    sh, sw = h * self._scale, w * self._scale
    if self._scale <= 0 or sh.denominator != 1 or sw.denominator != 1:
      raise ConfigError(f'model.input_scale={self.input_scale} must be > 0 and turn the '
                        f'input size {h}x{w} into whole pixels, got {float(sh):g}x{float(sw):g}')
    return int(sh), int(sw)

  @property
  def input_multiple(self) -> int:
    """The smallest m such that inputs whose sides are multiples of m can be used."""
    stride = 2 ** self.depth * self._scale.denominator
    return stride // math.gcd(stride, self._scale.numerator)

  def check_input_shape(self, shape: Sequence[int]) -> None:
    """Raises a ConfigError naming the problem if `shape` (N,H,W,C) can't be used."""
    if len(shape) != 4:
      raise ConfigError(f'UNet expects NHWC images, got shape {tuple(shape)}')
    h, w = shape[1], shape[2]
    sh, sw = self.working_size(h, w)
    stride = 2 ** self.depth
    if sh % stride or sw % stride:
      m = self.input_multiple
      scaled = (f' (scaled by model.input_scale={self.input_scale}: {sh}x{sw})'
                if self.input_scale != 1 else '')
      raise ConfigError(
          f'input size {h}x{w}{scaled} is not a multiple of 2**depth = {stride} '
          f'(depth {self.depth} from {len(self.widths)} widths); choose an '
          f'image size divisible by {m}, e.g. {h // m * m or m}x{w // m * m or m}')

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    self.check_input_shape(images.shape)
    if self.norm not in NORMS:
      raise ConfigError(f'model.norm must be one of {NORMS}, got {self.norm!r}')
    if self.upsample not in UPSAMPLES:
      raise ConfigError(f'model.upsample must be one of {UPSAMPLES}, got {self.upsample!r}')
    if len(self.dropout) != len(self.widths):
      raise ConfigError(f'model.dropout has {len(self.dropout)} entries, '
                       f'model.widths has {len(self.widths)}: give one rate per level')
    x = images
    if jnp.issubdtype(x.dtype, jnp.integer):
      x = x.astype(jnp.float32) / 255.0
    n, h, w, _ = x.shape
    if self.input_scale != 1:
      # More pixels for thin classes (poles, fences) than the input has.
      x = jax.image.resize(x, (n, *self.working_size(h, w), x.shape[-1]), 'linear')
    x = x.astype(self.dtype)
    # `train` (argument 2 counting self) is a Python bool: static under remat.
    block_cls = nn.remat(ConvBlock, static_argnums=(2,)) if self.remat else ConvBlock
    # Explicit names keep the parameter tree the same with remat on or off.
    block_names = (f'ConvBlock_{i}' for i in itertools.count())
    block = lambda width, dropout: block_cls(
        width, self.convs_per_block, self.norm, self.group_size, dropout, self.dtype,
        name=next(block_names))

    skips = []
    for level, width in enumerate(self.widths[:-1]):
      x = block(width, self.dropout[level])(x, train)
      skips.append(x)
      x = layers.max_pool_2x2(x, self.pool_impl)
    x = block(self.widths[-1], self.dropout[self.depth])(x, train)

    for level in reversed(range(self.depth)):
      width = self.widths[level]
      if self.upsample == 'transpose':
        x = layers.UpConv(width, impl=self.upconv_impl, dtype=self.dtype)(x)
      else:
        n, h, w, c = x.shape
        x = jax.image.resize(x, (n, 2 * h, 2 * w, c), 'bilinear')
        x = nn.Conv(width, (3, 3), padding='SAME', dtype=self.dtype)(x)
      x = jnp.concatenate([x, skips[level]], axis=-1)
      # Decoder blocks carry no dropout, as in the lab model.
      x = block(width, 0.0)(x, train)

    x = nn.Conv(self.widths[0], (3, 3), padding='SAME', dtype=self.dtype,
                kernel_init=nn.initializers.he_normal())(x)
    x = nn.relu(x)
    logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype)(x).astype(jnp.float32)
    if self.input_scale != 1:
      logits = jax.image.resize(logits, (n, h, w, self.num_classes), 'linear')
    return logits


def level_widths(model_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """Channels per level: `widths` if given, else `width` x `width_multipliers`."""
  if model_config.widths:
    return tuple(model_config.widths)
  return tuple(int(model_config.width * m) for m in model_config.width_multipliers)


def create_model(model_config: ml_collections.ConfigDict, num_classes: int) -> UNet:
  """Builds the UNet described by `config.model`."""
  dtypes = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if model_config.dtype not in dtypes:
    raise ConfigError(f'model.dtype must be one of {sorted(dtypes)}, got {model_config.dtype!r}')
  return UNet(
      num_classes=num_classes,
      widths=level_widths(model_config),
      convs_per_block=model_config.convs_per_block,
      norm=model_config.norm,
      group_size=model_config.group_size,
      dropout=tuple(model_config.dropout),
      upsample=model_config.upsample,
      upconv_impl=model_config.upconv_impl,
      pool_impl=model_config.pool_impl,
      dtype=dtypes[model_config.dtype],
      remat=model_config.remat,
      input_scale=model_config.input_scale)
