"""A quick real-data model: a small U-Net on CARLA frames in ~10 CPU minutes.

Run (the 699 shared frames, or the lab's `data/` folder):
  python main.py --config=configs/carla_quick.py --workdir=/tmp/unet_carla_quick \
      --config.data.data_dir=../shared/data/carla_lab/320x240

For debugging on a laptop and for demo pictures, not for results: 4 levels of
16..128 channels with batch norm (539k parameters, vs 8.6M for the lab model),
AdamW with warmup + cosine, horizontal flips, 15 epochs at 96x128.
Expected on a 2-core CPU (measured, see README "Results"): MEASURED_BELOW.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = (96, 128)
  config.data.hflip = True
  config.model.width = 16
  config.model.width_multipliers = (1, 2, 4, 8)
  config.model.dropout = (0.0, 0.0, 0.0, 0.0)
  config.model.norm = 'batch'
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = 'warmup_cosine'
  config.optimizer.warmup_steps = 40
  config.optimizer.weight_decay = 1e-4
  config.batch_size = 16
  config.num_epochs = 15.0
  config.log_every_steps = 20
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  return config
