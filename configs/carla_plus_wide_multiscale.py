"""carla_plus_wide_upscaled, trained and evaluated at three input scales.

Run, after configs/carla_plus_wide_large.py has trained into /tmp/unet_carla_plus_wide_large:
  python main.py --config=configs/carla_plus_wide_multiscale.py \
      --workdir=/tmp/unet_carla_plus_wide_multiscale \
      --config.data.data_dir=../shared/data/carla_lab/320x240 \
      --config.init_from=/tmp/unet_carla_plus_wide_large

Same start, steps and learning rate as carla_plus_wide_upscaled, but each step
runs the U-Net at an input_scale drawn from (1, 1.5, 2) (96x128, 144x192 or
192x256 convolutions of the same 96x128 frames), and evaluation averages the
softmax of all three scales, each with its mirror image (6 forward passes per
frame). The upscaled model, trained at 1.5 alone, already gains from this
averaging (0.3500 -> 0.3714 with `--hflip --input_scales=1,1.5,2`); training
at every scale makes each view a good one.
"""

from configs import carla_plus_wide_upscaled


def get_config():
  config = carla_plus_wide_upscaled.get_config()  # same start, steps and learning rate
  config.train_input_scales = (1.0, 1.5, 2.0)
  config.eval_input_scales = (1.0, 1.5, 2.0)
  config.eval_hflip = True
  return config
