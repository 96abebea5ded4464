"""A quick real-data model: the embedded default's recipe on CARLA frames (~10 CPU minutes).

Run (the 699 shared frames, or the lab's `data/` folder):
  python main.py --config=configs/carla_quick.py --workdir=/tmp/unet_carla_quick \
      --config.data.data_dir=../shared/data/carla_lab/320x240

For debugging on a laptop and for demo pictures, not for results: the small
U-Net of configs/synthetic.py (4 levels of 16..128 channels, batch norm, 539k
parameters vs 8.6M for the lab model), AdamW with warmup + cosine, horizontal
flips, 15 epochs at 96x128, batch 16.
Expected on a 2-core CPU (measured, README "Results"): validation mIoU 0.273,
pixel accuracy 0.931 on the 111 validation frames (5 clips) of the shared
data, in about 12 minutes. Road, sky, vegetation and terrain are found; poles,
fences, pedestrians and signs are not (docs/carla_quick_eval.md).
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
