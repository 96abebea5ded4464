"""Starting JAX's multi-process runtime when a run spans several processes.

Where it happens:
  * explicit: --coordinator_address, --num_processes, --process_id (or the
    environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    JAX_PROCESS_ID), e.g. plain GPU hosts or the local test;
  * detected: TPU VM pod slices and SLURM jobs with more than one task, where
    `jax.distributed.initialize()` reads the cluster from the environment.
A single process (a laptop, one GPU box) starts nothing.
"""

import os

import jax
from absl import logging


def _detected_cluster() -> str:
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_JOB_ID' in os.environ:
    return 'SLURM'
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  if ',' in hosts:
    return 'TPU pod slice'
  return ''


def initialize(coordinator_address: str = '', num_processes: int = 0,
               process_id: int = -1, cpu_collectives: str = 'gloo') -> None:
  """Calls `jax.distributed.initialize` if this run has several processes."""
  coordinator_address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS', '')
  num_processes = num_processes or int(os.environ.get('JAX_NUM_PROCESSES', '0'))
  if process_id < 0:
    process_id = int(os.environ.get('JAX_PROCESS_ID', '-1'))
  if coordinator_address:
    if num_processes < 1 or process_id < 0:
      raise ValueError('--coordinator_address needs --num_processes and --process_id '
                       '(or JAX_NUM_PROCESSES and JAX_PROCESS_ID)')
    # CPU processes exchange gradients over gloo; GPUs and TPUs use their own links.
    jax.config.update('jax_cpu_collectives_implementation', cpu_collectives)
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif cluster := _detected_cluster():
    logging.info('Detected a %s cluster: initialising JAX distributed from it', cluster)
    jax.distributed.initialize()
  else:
    return
  logging.info('JAX distributed: process %d of %d, %d local / %d global devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
