"""Settings of the host process that the code chooses before JAX starts.

On a CPU, XLA runs one device's step with a thread pool over all cores but
leaves cores idle in its many small sequential ops. Splitting the CPU into
several XLA devices and the batch over them (the same data-parallel jit as on
a multi-GPU host, batch-norm statistics still over the whole batch) keeps
both cores of a 2-core machine busy: bench.run's `fastlayers_f32` vs
`fastlayers_f32_cpu2` subjects measure it (README "Performance").
`config.cpu_devices` sets the count; 0 picks it from the cores and the batch
sizes. Only the CPU platform is affected; GPUs and TPUs are left alone.
"""

import os

import ml_collections
from absl import logging

from unet_jax.errors import ConfigError

# Above this, one more device per core was not measured to help (only 2-core machines were).
MAX_AUTO_CPU_DEVICES = 2


def available_cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def cpu_device_count(config: ml_collections.ConfigDict, cores: int | None = None) -> int:
  """`config.cpu_devices`, or (0) the most devices <= cores that divide the batches."""
  if config.cpu_devices < 0:
    raise ConfigError(f'config.cpu_devices must be >= 0 (0: automatic), got {config.cpu_devices}')
  if config.cpu_devices:
    return config.cpu_devices
  cores = min(cores or available_cores(), MAX_AUTO_CPU_DEVICES)
  return max(n for n in range(1, cores + 1)
             if config.batch_size % n == 0 and config.eval_batch_size % n == 0)


def configure_cpu_devices(config: ml_collections.ConfigDict) -> None:
  """Splits the CPU into `cpu_device_count(config)` XLA devices; call before any JAX op.

  A count the user set in XLA_FLAGS (--xla_force_host_platform_device_count,
  as the multi-process tests do) wins over the config's.
  """
  import jax
  if 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    logging.info('CPU devices: left to XLA_FLAGS=%s', os.environ['XLA_FLAGS'])
    return
  count = cpu_device_count(config)
  jax.config.update('jax_num_cpu_devices', count)
  logging.info('CPU devices: %d (config.cpu_devices=%d, %d cores)', count, config.cpu_devices,
               available_cores())
