"""The U-Net and its fast layers."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from unet_jax import layers, models
from unet_jax.errors import ConfigError


def _param_count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


def test_lab_preset_matches_the_lab_model():
  model = models.create_model(default.lab_model(), num_classes=23)
  x = jnp.zeros((2, 96, 128, 3), jnp.uint8)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert _param_count(variables['params']) == 8_640_471
  assert 'batch_stats' not in variables
  out = jax.eval_shape(model.apply, variables, x)
  assert out.shape == (2, 96, 128, 23) and out.dtype == jnp.float32
  # Layer structure: 5 encoder + 4 decoder blocks of two convs, 4 up-convs, head.
  names = set(variables['params'])
  assert {f'ConvBlock_{i}' for i in range(9)} <= names
  assert {f'UpConv_{i}' for i in range(4)} <= names
  assert {'Conv_0', 'Conv_1'} <= names
  assert variables['params']['Conv_1']['kernel'].shape == (1, 1, 32, 23)


@pytest.mark.parametrize('size', [(100, 128), (96, 120)])
def test_bad_input_size_is_a_clear_error(size):
  model = models.create_model(default.lab_model(), num_classes=23)
  with pytest.raises(ValueError, match=r'not a multiple of 2\*\*depth = 16'):
    model.init(jax.random.key(0), jnp.zeros((1, *size, 3)))


@pytest.mark.slow
def test_input_scale_runs_the_same_weights_at_a_larger_size():
  cfg = default.lab_model()
  cfg.update(widths=(8, 16, 16), dropout=(0.0, 0.0, 0.0))
  plain = models.create_model(cfg, num_classes=5)
  cfg.input_scale = 1.5
  scaled = models.create_model(cfg, num_classes=5)
  x = jax.random.uniform(jax.random.key(1), (2, 16, 24, 3))
  variables = plain.init(jax.random.key(0), x)
  # The same parameters: a U-Net's weights do not depend on its input size.
  assert jax.tree.structure(scaled.init(jax.random.key(0), x)) == jax.tree.structure(variables)
  out = scaled.apply(variables, x)
  assert out.shape == (2, 16, 24, 5) and out.dtype == jnp.float32
  # What it computes: the plain model on the 24x36 image, logits resized back.
  big = jax.image.resize(x, (2, 24, 36, 3), 'linear')
  expected = jax.image.resize(plain.apply(variables, big), (2, 16, 24, 5), 'linear')
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(out, plain.apply(variables, x), atol=1e-3)


@pytest.mark.parametrize('scale, multiple', [(1.0, 16), (2.0, 8), (1.5, 32), (0.5, 32)])
def test_input_multiple_accounts_for_input_scale(scale, multiple):
  cfg = default.lab_model()
  cfg.input_scale = scale
  model = models.create_model(cfg, num_classes=23)
  assert model.input_multiple == multiple
  model.check_input_shape((1, multiple, 2 * multiple, 3))  # fits
  if multiple > 1:
    with pytest.raises(ConfigError, match=f'divisible by {multiple}'):
      model.check_input_shape((1, multiple + multiple // 2, 2 * multiple, 3))


@pytest.mark.parametrize('scale', [1.1, 0.7, 1.3])
def test_every_multiple_of_input_multiple_fits(scale):
  # The scale is taken exactly: 800 x 1.1 must be 880 pixels, not a float just above.
  cfg = default.lab_model()
  cfg.input_scale = scale
  model = models.create_model(cfg, num_classes=23)
  m = model.input_multiple
  for i in range(1, 20):
    model.check_input_shape((1, i * m, m, 3))


def test_input_scale_that_leaves_fractional_pixels_is_a_clear_error():
  cfg = default.lab_model()
  cfg.input_scale = 1.3
  with pytest.raises(ConfigError, match=r'model.input_scale=1.3 .* whole pixels'):
    models.create_model(cfg, num_classes=23).check_input_shape((1, 96, 128, 3))


@pytest.mark.parametrize('norm', ['none', 'batch', 'group'])
@pytest.mark.parametrize('upsample', ['transpose', 'resize'])
def test_variants_build_and_train_mode_differs(norm, upsample):
  cfg = default.lab_model()
  cfg.update(widths=(8, 16, 16), dropout=(0.0, 0.5, 0.5), norm=norm, upsample=upsample)
  model = models.create_model(cfg, num_classes=5)
  x = jax.random.uniform(jax.random.key(1), (4, 16, 24, 3))
  variables = model.init(jax.random.key(0), x)
  assert ('batch_stats' in variables) == (norm == 'batch')
  eval_out = model.apply(variables, x, train=False)
  assert eval_out.shape == (4, 16, 24, 5)
  train_out, _ = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)},
                             mutable=['batch_stats'])
  # Dropout (and batch statistics) make train mode differ from eval mode.
  assert not np.allclose(train_out, eval_out)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  cfg = default.lab_model()
  cfg.update(widths=(8, 16), dropout=(0.0, 0.0), dtype='bfloat16', norm='batch')
  model = models.create_model(cfg, num_classes=3)
  x = jnp.ones((2, 8, 8, 3), jnp.uint8)
  variables = model.init(jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  assert model.apply(variables, x).dtype == jnp.float32


def _grads(fn, x, k):
  return jax.grad(lambda x, k: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))(x, k)


@pytest.mark.parametrize('kernel', [2, 3, 4])
def test_subpixel_transpose_conv_equals_flax_conv_transpose(kernel):
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 6))
  k = jax.random.normal(jax.random.key(1), (kernel, kernel, 6, 4))
  plain = lambda x, k: nn.ConvTranspose(4, (kernel, kernel), strides=(2, 2), padding='SAME',
                                        use_bias=False).apply({'params': {'kernel': k}}, x)
  fast = layers.subpixel_conv_transpose
  np.testing.assert_allclose(fast(x, k), plain(x, k), rtol=1e-5, atol=1e-5)
  for g_fast, g_plain in zip(_grads(fast, x, k), _grads(plain, x, k)):
    np.testing.assert_allclose(g_fast, g_plain, rtol=1e-4, atol=1e-4)


def test_upconv_impls_agree():
  x = jax.random.normal(jax.random.key(0), (2, 4, 6, 8))
  fast, plain = layers.UpConv(5, impl='subpixel'), layers.UpConv(5, impl='xla')
  variables = fast.init(jax.random.key(1), x)
  np.testing.assert_allclose(fast.apply(variables, x), plain.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_max_pool_2x2_equals_flax_max_pool():
  # Random floats have no ties, so the gradients must match exactly too.
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  plain = functools.partial(layers.max_pool_2x2, impl='xla')
  np.testing.assert_array_equal(plain(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
  np.testing.assert_array_equal(layers.max_pool_2x2(x), plain(x))
  g = lambda f: jax.grad(lambda x: jnp.sum(jnp.sin(f(x)) * jnp.arange(3.0)))(x)
  np.testing.assert_allclose(g(layers.max_pool_2x2), g(plain), rtol=1e-6)


@pytest.mark.slow
def test_fast_and_plain_layer_impls_give_the_same_unet():
  """The whole model: same parameters, outputs and parameter gradients."""
  config = default.get_config().model
  config.update(width=4, width_multipliers=(1, 2, 4), dropout=(0.0,) * 3)
  fast = models.create_model(config, num_classes=5)
  config.update(upconv_impl='xla', pool_impl='xla')
  plain = models.create_model(config, num_classes=5)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 24, 3))
  variables = fast.init(jax.random.key(1), x)
  assert jax.tree.structure(variables) == jax.tree.structure(plain.init(jax.random.key(1), x))
  np.testing.assert_allclose(fast.apply(variables, x), plain.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  grad = lambda m: jax.grad(lambda v: jnp.sum(jnp.sin(m.apply(v, x))))(variables)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5),
               grad(fast), grad(plain))


def test_unknown_pool_impl_is_a_config_error():
  with pytest.raises(ConfigError, match="model.pool_impl must be 'reshape' or 'xla'"):
    layers.max_pool_2x2(jnp.zeros((1, 2, 2, 1)), impl='avg')


@pytest.mark.slow
def test_remat_keeps_parameters_outputs_and_gradients():
  cfg = default.lab_model()
  cfg.update(widths=(4, 8, 16), dropout=(0.0, 0.0, 0.0), norm='batch')
  plain = models.create_model(cfg, num_classes=3)
  cfg.remat = True
  remat = models.create_model(cfg, num_classes=3)
  x = jax.random.uniform(jax.random.key(0), (2, 8, 12, 3))
  variables = plain.init(jax.random.key(1), x)
  # Same parameter tree: checkpoints move between remat on and off.
  assert (jax.tree.structure(remat.init(jax.random.key(1), x))
          == jax.tree.structure(variables))

  def loss(model, params):
    logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                            mutable=['batch_stats'])
    return jnp.sum(jnp.sin(logits))
  for a, b in zip(jax.tree.leaves(jax.grad(functools.partial(loss, plain))(variables['params'])),
                  jax.tree.leaves(jax.grad(functools.partial(loss, remat))(variables['params']))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
