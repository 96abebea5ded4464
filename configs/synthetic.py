"""Embedded default: a small U-Net on generated driving scenes. Runs anywhere.

For: the first run on a fresh machine, no data needed. 40 clips x 12 frames
(CARLA classes, lab encoding) are generated into <workdir>/synthetic_data on
first use, read through the same loader as real data and trained at 96x128:
a 4-level U-Net of 16..128 channels with batch norm, AdamW, 420 steps, about
5 minutes on a 2-core CPU.

Run:
  python main.py --config=configs/synthetic.py --workdir=workdirs/synthetic

Expected: docs/results.md, row `synthetic.py` (and the "sky above, road below"
baseline on the same frames: python -m unet_jax.baselines --config=configs/synthetic.py).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.source = 'synthetic'
  config.data.augment.hflip = True
  config.model.width = 16
  config.model.width_multipliers = (1, 2, 4, 8)
  config.model.dropout = (0.0, 0.0, 0.0, 0.0)
  config.model.norm = 'batch'
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = 'warmup_cosine'
  config.optimizer.warmup_steps = 30
  config.optimizer.weight_decay = 1e-4
  config.batch_size = 8
  config.eval_batch_size = 32
  config.num_train_steps = 420
  config.log_every_steps = 40
  config.eval_every_steps = 140
  config.checkpoint_every_steps = 140
  return config
