"""Smoke test: a 2-level U-Net on a few generated 32x48 frames, seconds long.

Run:
  python main.py --config=configs/tiny.py --workdir=/tmp/unet_tiny

For checking that the code runs (tests use it); its scores mean nothing.
Expected: finishes in well under a minute on a laptop CPU.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.source = 'synthetic'
  config.data.image_size = (32, 48)
  config.data.synthetic.update(num_clips=6, frames_per_clip=4, height=48, width=64, seed=0)
  config.data.val_fraction = 0.3
  config.model.width = 4
  config.model.width_multipliers = (1, 2)
  config.model.dropout = (0.0, 0.1)
  config.model.norm = 'batch'
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.prefetch_batches = 1
  return config
