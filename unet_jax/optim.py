"""Optimizer and learning-rate schedule from `config.optimizer`."""

import ml_collections
import optax

from unet_jax.errors import ConfigError

OPTIMIZERS = ('adam', 'adamw', 'sgd')
SCHEDULES = ('constant', 'warmup_cosine', 'piecewise')


def create_schedule(opt: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  """Learning rate as a function of the step."""
  lr = opt.learning_rate
  if opt.schedule == 'constant':
    return optax.constant_schedule(lr)
  if opt.schedule == 'warmup_cosine':
    warmup = min(opt.warmup_steps, max(num_train_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup,
        decay_steps=max(num_train_steps, warmup + 1), end_value=lr * opt.end_lr_factor)
  if opt.schedule == 'piecewise':
    # boundaries are fractions of training so a recipe survives a change of length.
    boundaries = {int(frac * num_train_steps): scale
                  for frac, scale in zip(opt.piecewise_boundaries, opt.piecewise_scales)}
    return optax.piecewise_constant_schedule(lr, boundaries)
  raise ConfigError(f'optimizer.schedule must be one of {SCHEDULES}, got {opt.schedule!r}')


def create_optimizer(opt: ml_collections.ConfigDict,
                     num_train_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optax transformation (with optional clipping) and its schedule."""
  schedule = create_schedule(opt, num_train_steps)
  if opt.name == 'adam':
    tx = optax.adam(schedule, b1=opt.b1, b2=opt.b2)
    if opt.weight_decay:
      raise ConfigError('optimizer.weight_decay needs optimizer.name=adamw or sgd, '
                       'adam has no decoupled weight decay')
  elif opt.name == 'adamw':
    tx = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  elif opt.name == 'sgd':
    tx = optax.sgd(schedule, momentum=opt.momentum, nesterov=opt.nesterov)
    if opt.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  else:
    raise ConfigError(f'optimizer.name must be one of {OPTIMIZERS}, got {opt.name!r}')
  if opt.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx, schedule
