"""Ablation of configs/carla_quick.py on the shared CARLA frames: 9 variants x 3 seeds.

Run (27 runs of ~10 CPU minutes each; --parallel runs several at a time):
  python -m unet_jax.sweep --sweep=configs/sweeps/carla_ablation.py \
      --workdir=workdirs/carla_ablation --parallel=1

Results: workdirs/carla_ablation/results.{md,csv,png}, per-class IoU in
per_class.csv. Each run is a normal workdir (variant/seed_N) that resumes.
"""


def get_sweep():
  return dict(
      config='configs/carla_quick.py',
      overrides={'data.data_dir': '../shared/data/carla_lab/320x240'},
      seeds=(0, 1, 2),
      variants={
          'baseline': {},                        # batch norm, transpose conv, flips, width 16
          'norm_none': {'model.norm': 'none'},
          'norm_group': {'model.norm': 'group'},
          'upsample_resize': {'model.upsample': 'resize'},
          'loss_dice': {'loss.dice_weight': 0.5},  # cross-entropy + 0.5 soft Dice
          'loss_class_weighted': {'loss.class_weighting': 'median_frequency'},
          'no_augment': {'data.augment.hflip': False},
          'width_8': {'model.width': 8},
          'width_32': {'model.width': 32},
      },
  )
