"""carla_plus_wide_large's weights on 96x128 frames upscaled 1.5x inside the model.

Run, after configs/carla_plus_wide_large.py has trained into /tmp/unet_carla_plus_wide_large:
  python main.py --config=configs/carla_plus_wide_upscaled.py \
      --workdir=/tmp/unet_carla_plus_wide_upscaled \
      --config.data.data_dir=../shared/data/carla_lab/320x240 \
      --config.init_from=/tmp/unet_carla_plus_wide_large

Input and output stay the lab's 96x128; `model.input_scale=1.5` resizes the
frame to 144x192 before the first conv and the logits back to 96x128 after
the last, so thin classes (poles, fences, pedestrians) cover more positions of
every level. The 192x256 stage's weights already score 0.3402 this way before
any training (0.3139 at 1x). The schedule is carla_plus_wide_refine's (360
steps of batch 16, 10 epochs); each step costs ~2.25x a 96x128 step.
"""

from configs import carla_plus_wide_refine


def get_config():
  config = carla_plus_wide_refine.get_config()  # same start, steps and learning rate
  config.model.input_scale = 1.5
  return config
