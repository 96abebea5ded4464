"""configs/carla_plus.py at twice the resolution (192x256), on a short CPU budget.

Run:
  python main.py --config=configs/carla_plus_large.py --workdir=/tmp/unet_carla_plus_large \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Same model, loss and augmentation as carla_plus; 4x the pixels per frame, so
batch 8. Small objects (poles, signs, road lines) cover more pixels at this size.
Measured (README "Results", docs/carla_results.md; 2 CPU devices): 16 epochs,
validation mIoU 0.3103, pixel accuracy 0.9445 at the end (best 0.3138 at step
600 of 1168), in 52 minutes, 20 of them beside a CI run. An earlier 6-epoch run
(`--config.num_epochs=6 --config.eval_every_steps=150`) reached 0.2430.
"""

from configs import carla_plus


def get_config():
  config = carla_plus.get_config()
  config.data.image_size = (192, 256)
  config.batch_size = 8
  config.eval_batch_size = 16
  config.num_epochs = 16.0
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 300
  return config
