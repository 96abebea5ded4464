"""Your own data, or a public benchmark, with this codebase's best single-run recipe.

The recipe is configs/carla_plus_w32.py (the lab U-Net's widths with batch
norm, AdamW + warmup + cosine, flips, zoom crops, colour jitter,
cross-entropy + 0.5 soft Dice), trained at `image_size` on any dataset. Its
result on the CARLA frames: docs/results.md, row `carla_plus_wide.py`.

Set on the command line (every field: configs/default.py, `config.data`):
  data.data_dir      the dataset folder
  data.layout        folder | split_folders | list_files (unet_jax/data/layouts.py)
  data.mask_encoding single_channel (8/16-bit ids) | paletted | palette (+ palette_file) | channel0
  data.num_classes, data.class_names (or () for class_0, class_1, ...), data.ignore_label
  data.label_map_file  raw ids -> training ids ("RAW TRAIN" lines, TRAIN may be 'ignore')
  data.image_size    (H, W), each a multiple of 16

Look first (splits, sizes, class shares, a picture; nothing is trained):
  python -m unet_jax.data.inspect --config=configs/own_data.py \
      --config.data.data_dir=/data/camvid --config.data.num_classes=11 \
      --output_dir=/tmp/camvid_inspect

Train on a folder per split (`train/` + `trainannot/`, `val/` + `valannot/`,
`test/` + `testannot/`, 8-bit class-id masks, void = 11), e.g. CamVid as SegNet ships it:
  python main.py --config=configs/own_data.py --workdir=/tmp/camvid \
      --config.data.data_dir=/data/camvid --config.data.num_classes=11 \
      --config.data.ignore_label=11 --config.data.image_size='(352, 480)'

Score the test split (or any split the data has):
  python main.py --mode=eval --workdir=/tmp/camvid --split=test --checkpoint=best

Other layouts: `images/<split>/` + `annotations/<split>/` is found the same way;
list files: --config.data.layout=list_files
--config.data.list_files.train=train.txt --config.data.list_files.validation=val.txt
(lines `IMAGE_PATH MASK_PATH`; --config.data.path_prefix_map=/old/root=/data/x).
"""

from configs import carla_plus_w32


def get_config():
  config = carla_plus_w32.get_config()
  config.data.layout = 'split_folders'
  config.data.mask_encoding = 'single_channel'
  config.data.class_names = ()  # generic names unless given (or read from palette_file)
  config.data.ignore_label = 255
  config.data.image_size = (96, 128)
  return config
