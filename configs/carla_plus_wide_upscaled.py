"""carla_plus_wide_large's weights on 96x128 frames upscaled 1.5x inside the model.

Run, after configs/carla_plus_wide_large.py has trained into /tmp/unet_carla_plus_wide_large:
  python main.py --config=configs/carla_plus_wide_upscaled.py \
      --workdir=/tmp/unet_carla_plus_wide_upscaled \
      --config.data.data_dir=../shared/data/carla_lab/320x240 \
      --config.init_from=/tmp/unet_carla_plus_wide_large

Input and output stay the lab's 96x128; `model.input_scale=1.5` resizes the
frame to 144x192 before the first conv and the logits back to 96x128 after
the last, so thin classes (poles, fences, pedestrians) cover more positions of
every level. The 192x256 stage's weights already score 0.3398 this way before
any training (0.3139 at 1x; `--mode=eval --workdir=<carla_plus_wide_large's>
--config=configs/carla_plus_wide_upscaled.py`, with or without
`--config.model.input_scale=1`). The schedule is carla_plus_wide_refine's (360
steps of batch 16, 10 epochs); each step costs ~2.25x a 96x128 step.
Measured on a 2-core CPU (2 CPU devices; README "Results", docs/carla_results.md):
validation mIoU 0.3500, pixel accuracy 0.9555 (0.3444 after 120 steps, 0.3499
after 240), in 47 minutes, alone; 0.3535 with
`--mode=eval --hflip`. Against carla_plus_wide (0.3371): vehicles 0.556 ->
0.652, pedestrians 0.174 -> 0.224, poles 0.106 -> 0.144; guard rails 0.625 -> 0.593.
"""

from configs import carla_plus_wide_refine


def get_config():
  config = carla_plus_wide_refine.get_config()  # same start, steps and learning rate
  config.model.input_scale = 1.5
  return config
