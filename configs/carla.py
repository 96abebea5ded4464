"""The lab recipe on real CARLA frames: lab U-Net, 96x128, Adam 1e-3, batch 32, 40 epochs.

Run (with the lab's `data/` folder, or the 699 shared frames):
  python main.py --config=configs/carla.py --workdir=/tmp/unet_carla \
      --config.data.data_dir=../shared/data/carla_lab/320x240

`data_dir` holds `CameraRGB/NAME.png` and `CameraMask/NAME.png` in the lab
encoding (class in mask channel 0), at any frame size; frames are resized to
96x128. Train and validation are split by clip (each clip validates with
probability 0.2; on the 699 shared frames: 5 of 31 clips, 111 frames).

Expected: the lab reports 0.949 training pixel accuracy for this recipe, and
the data README reports 0.876 pixel accuracy / 0.244 mean IoU on held-back
clips for the Keras original. Here (docs/carla_results.md): validation mIoU
0.2944, pixel accuracy 0.9281 after 720 steps (0.154 / 0.251 / 0.288 at
steps 100 / 300 / 600); 40 epochs take about 90 minutes on a 2-core
CPU at ~4 images/s (bench/, README "Performance"). For a quick real-data
model use configs/carla_quick.py.
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
