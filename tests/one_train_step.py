"""Child process for test_parallel: one train step, parameters saved to a file.

Run with XLA_FLAGS=--xla_force_host_platform_device_count=N to choose the
device count; the step must not depend on it.
"""

import sys

import jax
import numpy as np

from conftest import tiny_config
from unet_jax import input_pipeline, models, optim, parallel, train


def main(data_dir: str, out_path: str) -> None:
  config = tiny_config()
  config.model.dropout = (0.0, 0.0)  # dropout masks depend on the sharding
  config.data.hflip = True
  data = input_pipeline.load_split(data_dir, 'train', config.data)
  batch = input_pipeline.TrainBatches(data, config.batch_size, 0, True)(0)
  model = models.create_model(config.model, config.data.num_classes)
  tx, _ = optim.create_optimizer(config.optimizer, 10)
  mesh = parallel.create_mesh()
  state = jax.device_put(train.create_train_state(config, model, tx, jax.random.key(0)),
                         parallel.replicated(mesh))
  step = jax.jit(lambda s, b: train.train_step(s, b, config=config,
                                               dropout_key=jax.random.key(1)),
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)))
  state, metrics = step(state, parallel.to_global(batch, parallel.batch_sharding(mesh)))
  leaves = jax.tree_util.tree_leaves_with_path({'params': state.params,
                                                'batch_stats': state.batch_stats})
  arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
  arrays['loss'] = np.asarray(metrics['loss_sum'] / metrics['weight_sum'])
  arrays['device_count'] = np.asarray(jax.device_count())
  np.savez(out_path, **arrays)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
