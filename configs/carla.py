"""The lab recipe on real CARLA frames: lab U-Net, 96x128, Adam 1e-3, batch 32, 40 epochs.

For: the anchor every other recipe is compared with. `data_dir` holds
CameraRGB/NAME.png and CameraMask/NAME.png in the lab encoding, at any frame
size; frames are resized to 96x128 and split by clip (docs/data.md).

Run (with the lab's data/ folder, or the 699 shared frames):
  python main.py --config=configs/carla.py --workdir=workdirs/carla \
      --config.data.data_dir=../shared/data/carla_lab/320x240

Expected: docs/results.md, row `carla.py`; per class: docs/carla_results.md.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = (96, 128)
  config.model = default.lab_model()
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = 'constant'
  config.batch_size = 32
  config.num_epochs = 40.0
  config.log_every_steps = 10
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  return config
