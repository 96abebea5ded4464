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
frame). Averaging scales does not help a model trained at one scale: the
upscaled model scores 0.3535 with `--hflip`, 0.3553 with `--hflip
--input_scales=1.5,2`; with `--input_scales=1,1.5,2` it scores 0.3714, but
only because it then predicts no Bridge pixel (Bridge is absent from the
validation truth, so it drops out of the mean); the 20 classes in the truth
average 0.3711, 0.3730 and 0.3714. Training at every scale is meant to make
each view a good one.
Measured on a 2-core CPU (2 CPU devices; README "Results", docs/carla_results.md):
validation mIoU 0.3727 (0.3762 at step 240, 0.3503 at 120), pixel accuracy
0.9596, in 54 minutes (~12 of them beside evaluations and tests). Part of that
is Bridge again: this model predicts none on the validation frames, the
upscaled one 49 pixels. Over the 20 classes in the truth (`mean_iou_truth`) it
scores 0.3727 against the upscaled model's 0.3711 with mirroring; the same
weights score 0.3515 (0.3691) at input_scale 1.5 alone and 0.3539 (0.3716)
with mirroring. 240 more steps from these weights at learning rate 2e-4
(command in docs/carla_results.md; 35 minutes): mean_iou_truth 0.3761, but
mean_iou 0.3582, as that model predicts Bridge pixels again.
With --config.seed=1 and 2 (53 and 68 minutes): 0.3736 and 0.3570 (Bridge
again), 0.3678 +- 0.0093 over three seeds; mean_iou_truth 0.3737 +- 0.0011.
"""

from configs import carla_plus_wide_upscaled


def get_config():
  config = carla_plus_wide_upscaled.get_config()  # same start, steps and learning rate
  config.train_input_scales = (1.0, 1.5, 2.0)
  config.eval_input_scales = (1.0, 1.5, 2.0)
  config.eval_hflip = True
  return config
