"""configs/carla_plus_w32.py, then 400 steps with the Lovasz-softmax loss (an mIoU surrogate).

Stages (unet_jax/stages.py): base = configs/carla_plus_w32.py; lovasz = 400
steps of cross-entropy + Lovasz-softmax (no Dice), lr 1e-3, from base's weights.

Run:
  python main.py --config=configs/carla_plus_w32_lovasz.py \
      --workdir=workdirs/carla_plus_w32_lovasz \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, row `carla_plus_wide_lovasz.py` (a separate config chained by
init_from until 2026-12-03): it moves IoU between classes without raising the mean.
"""

from configs import carla_plus_w32


def get_config():
  config = carla_plus_w32.get_config()
  config.stages = (('lovasz', {'loss.dice_weight': 0.0, 'loss.lovasz_weight': 1.0,
                               'optimizer.learning_rate': 1e-3,
                               'optimizer.warmup_steps': 50, 'num_train_steps': 400,
                               'eval_every_steps': 100, 'checkpoint_every_steps': 100}),)
  return config
