"""configs/carla_plus_w16.py's recipe at the lab's widths (32..512 channels), 40 epochs.

For: the best CARLA model trained in one stage from scratch (8.6M
parameters, 4x carla_plus_w16's FLOPs); the ablation (docs/ablation.md) found
width the one change beyond the seed spread. It is the first stage of
configs/carla_plus_w32_staged.py and the recipe of configs/own_data.py.

Run:
  python main.py --config=configs/carla_plus_w32.py --workdir=workdirs/carla_plus_w32 \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, row `carla_plus_wide.py` (this config's name until
2026-12-03); curves: docs/carla_plus_wide_curves.png.
"""

from configs import carla_plus_w16


def get_config():
  config = carla_plus_w16.get_config()
  config.model.width = 32
  config.num_epochs = 40.0
  return config
