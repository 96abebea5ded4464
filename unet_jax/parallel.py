"""Device mesh, batch sharding and prefetching for data-parallel training.

One `data` mesh axis spans every device of every process: batches are split
along it, parameters are replicated. jit inserts the gradient all-reduce (and
the cross-device batch-norm statistics) from these shardings.
"""

import collections
import threading
from typing import Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from unet_jax.errors import ConfigError


def create_mesh() -> Mesh:
  # Auto axes: XLA propagates the batch sharding through reshapes in the model.
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, name: str = 'batch_size') -> None:
  """The global batch must split evenly over all devices."""
  n = jax.device_count()
  if batch_size % n:
    raise ConfigError(f'config.{name}={batch_size} is not divisible by the {n} devices; '
                     f'use a multiple of {n}')


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Assembles global arrays from this process's slice of the batch."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def prefetch_to_device(batches: Iterator[dict[str, np.ndarray]], sharding: NamedSharding,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Prepares and transfers the next `size` batches in a background thread."""
  if size <= 0:
    for batch in batches:
      yield to_global(batch, sharding)
    return
  queue: collections.deque = collections.deque()
  ready = threading.Semaphore(0)
  free = threading.Semaphore(size)
  stop = threading.Event()

  def producer():
    try:
      for batch in batches:
        free.acquire()
        if stop.is_set():
          return
        queue.append(('batch', to_global(batch, sharding)))
        ready.release()
    except BaseException as e:  # pass the error on to the consumer.
      queue.append(('error', e))
      ready.release()
      return
    queue.append(('end', None))
    ready.release()

  thread = threading.Thread(target=producer, daemon=True)
  thread.start()
  try:
    while True:
      ready.acquire()
      kind, item = queue.popleft()
      if kind == 'end':
        return
      if kind == 'error':
        raise item
      free.release()
      yield item
  finally:
    stop.set()
    free.release()
