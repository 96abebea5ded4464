"""configs/carla_plus_w16.py at 192x256 pixels (twice the lab's resolution).

For: what resolution buys at a quarter of the lab's widths, on a CPU budget
(batch 8, 16 epochs); scored on 192x256 masks.

Run:
  python main.py --config=configs/carla_plus_w16_192x256.py \
      --workdir=workdirs/carla_plus_w16_192x256 \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, row `carla_plus_large.py (192x256, 16 epochs)` (this
config's name until 2026-12-03).
"""

from configs import carla_plus_w16


def get_config():
  config = carla_plus_w16.get_config()
  config.data.image_size = (192, 256)
  config.batch_size = 8
  config.eval_batch_size = 16
  config.num_epochs = 16.0
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 300
  return config
