"""Child process of the parallelism tests: 3 train steps on fixed global batches.

  python train_steps_child.py OUT NUM_PROCESSES PROCESS_ID PORT
Devices per process come from XLA_FLAGS. With NUM_PROCESSES > 1 it joins a
gloo CPU cluster on 127.0.0.1:PORT. Each process feeds its rows of the same
global batches; process 0 saves parameters and batch-norm statistics.
"""

import sys

import jax
import numpy as np

from conftest import tiny_config
from unet_jax import distributed, models, optim, parallel, train


def main(out: str, num_processes: int, process_id: int, port: int) -> None:
  if num_processes > 1:
    distributed.initialize(f'127.0.0.1:{port}', num_processes, process_id)
  config = tiny_config()
  config.model.dropout = (0.0, 0.0)  # dropout masks depend on the sharding
  h, w = config.data.image_size
  model = models.create_model(config.model, config.data.num_classes)
  tx, _ = optim.create_optimizer(config.optimizer, 10)
  mesh = parallel.create_mesh()
  state = jax.device_put(train.create_train_state(config, model, tx, jax.random.key(0)),
                         parallel.replicated(mesh))
  step = jax.jit(lambda s, b: train.train_step(s, b, config=config,
                                               dropout_key=jax.random.key(1)),
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)))
  local = config.batch_size // jax.process_count()
  for i in range(3):
    rng = np.random.default_rng(i)
    images = rng.integers(0, 256, (config.batch_size, h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 23, (config.batch_size, h, w), dtype=np.int32)
    rows = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
    batch = {'image': images[rows], 'label': labels[rows]}
    state, _ = step(state, parallel.to_global(batch, parallel.batch_sharding(mesh)))
  variables = jax.device_get(state.variables)
  if jax.process_index() == 0:
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    np.savez(out, device_count=jax.device_count(), process_count=jax.process_count(),
             **{jax.tree_util.keystr(k): v for k, v in leaves})


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
