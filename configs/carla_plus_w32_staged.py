"""The best 96x128 CARLA models, from scratch in one command: three training stages.

Stages (unet_jax/stages.py; each from the previous one's final weights):
  base        configs/carla_plus_w32.py: 96x128, 40 epochs (1440 steps)
  192x256     240 steps at 192x256 (progressive resizing), lr 1e-3
  <arg>       360 steps back at 96x128, lr 5e-4, one of
                refine      as it is
                upscaled    convolutions on the frame upscaled 1.5x (model.input_scale)
                multiscale  each step at input_scale 1, 1.5 or 2; evaluation averages
                            the three scales and their mirror images (the default)

Run (about 3.5 hours on a 2-core CPU; the same command resumes):
  python main.py --config=configs/carla_plus_w32_staged.py:multiscale \
      --workdir=workdirs/carla_plus_w32_staged \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, rows `carla_plus_wide_large.py`, `carla_plus_wide_refine.py`,
`carla_plus_wide_upscaled.py`, `carla_plus_wide_multiscale.py` (these stages ran as
separate configs chained by init_from until 2026-12-03).
"""

from configs import carla_plus_w32

FINAL_STAGES = {
    'refine': {},
    'upscaled': {'model.input_scale': 1.5},
    'multiscale': {'model.input_scale': 1.5, 'train_input_scales': (1.0, 1.5, 2.0),
                   'eval_input_scales': (1.0, 1.5, 2.0), 'eval_hflip': True},
}


def get_config(arg: str = 'multiscale'):
  if arg not in FINAL_STAGES:
    raise ValueError(f'configs/carla_plus_w32_staged.py:ARG takes one of '
                     f'{sorted(FINAL_STAGES)}, got {arg!r}')
  config = carla_plus_w32.get_config()
  short = {'optimizer.warmup_steps': 24, 'eval_every_steps': 120,
           'checkpoint_every_steps': 120}
  config.stages = (
      ('192x256', {'data.image_size': (192, 256), 'batch_size': 8, 'eval_batch_size': 16,
                   'optimizer.learning_rate': 1e-3, 'num_train_steps': 240, **short}),
      (arg, {'optimizer.learning_rate': 5e-4, 'num_train_steps': 360, **short,
             **FINAL_STAGES[arg]}),
  )
  return config
