"""A quick real-data model: the embedded default's small U-Net on CARLA frames.

For: debugging on a laptop and demo pictures, not for results: the small
U-Net of configs/synthetic.py (539k parameters), AdamW + warmup + cosine,
flips, 15 epochs at 96x128, batch 16; about 12 minutes on a 2-core CPU.

Run (the 699 shared frames, or the lab's data/ folder):
  python main.py --config=configs/carla_quick.py --workdir=workdirs/carla_quick \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, row `carla_quick.py`; per class: docs/carla_quick_eval.md.
"""

from configs import synthetic


def get_config():
  config = synthetic.get_config()
  config.data.source = 'folder'
  config.optimizer.warmup_steps = 40
  config.batch_size = 16
  config.num_train_steps = -1
  config.num_epochs = 15.0
  config.log_every_steps = 20
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  return config
