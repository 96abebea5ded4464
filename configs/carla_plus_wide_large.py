"""carla_plus_wide's weights, fine-tuned at twice the resolution (192x256): progressive resizing.

Run, after configs/carla_plus_wide.py has trained into /tmp/unet_carla_plus_wide:
  python main.py --config=configs/carla_plus_wide_large.py \
      --workdir=/tmp/unet_carla_plus_wide_large \
      --config.data.data_dir=../shared/data/carla_lab/320x240 \
      --config.init_from=/tmp/unet_carla_plus_wide

A wide model trained from scratch at 192x256 costs about 4x carla_plus_wide
(~6 hours on a 2-core CPU). A U-Net's weights do not depend on the input size,
so this config starts from the 96x128 run's final weights (fresh optimizer)
and trains 240 steps of batch 8 (3.3 epochs) at 192x256 with the same loss and
augmentation, at a third of the first stage's peak learning rate. Scored on
192x256 validation masks.
Measured on a 2-core CPU (2 CPU devices; README "Results", docs/carla_results.md):
validation mIoU 0.3553, pixel accuracy 0.9575 after the 240 steps (0.3431 after
120), in 57 minutes, against 0.3103 for carla_plus_large (width 16, 16 epochs
from scratch at this size).
"""

from configs import carla_plus_wide


def get_config():
  config = carla_plus_wide.get_config()
  config.init_from = '/tmp/unet_carla_plus_wide'
  config.init_checkpoint = 'latest'
  config.data.image_size = (192, 256)
  config.batch_size = 8
  config.eval_batch_size = 16
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 24
  config.num_train_steps = 240
  config.eval_every_steps = 120
  config.checkpoint_every_steps = 120
  return config
