"""Every field of a unet_jax run and its default; the model is the lab U-Net.

The configs in configs/ start from `get_config()` (re-exported by
configs/default.py) and change what their recipe needs. Restoring a workdir
written before a field existed takes that field's default from here. Every
field can be overridden on the command line, e.g. `--config.model.norm=batch`;
unknown keys and wrong types are errors.
"""

import ml_collections

from unet_jax.classes import CARLA_CLASS_NAMES


def lab_model() -> ml_collections.ConfigDict:
  """The lab's Keras U-Net: 8,640,471 parameters at 96x128x3 and 23 classes."""
  return ml_collections.ConfigDict(dict(
      width=32,                        # channels of the first level
      width_multipliers=(1, 2, 4, 8, 16),  # per level; depth = levels - 1
      widths=(),                       # explicit per-level channels; overrides the two above
      convs_per_block=2,
      norm='none',                     # none | batch | group
      group_size=8,                    # channels per group for norm=group
      dropout=(0.0, 0.0, 0.0, 0.3, 0.3),  # per level, encoder only (as the lab)
      upsample='transpose',            # transpose | resize (bilinear + 3x3 conv)
      upconv_impl='subpixel',          # subpixel (fast, same result) | xla
      pool_impl='reshape',             # reshape + max (fast, same result) | xla (nn.max_pool)
      dtype='float32',                 # compute: float32 | bfloat16 (params, loss, metrics stay float32)
      remat=False,                     # recompute conv blocks in the backward pass (large inputs)
      input_scale=1.0,                 # convs run on the image resized by this; logits at input size
  ))


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict(dict(
      source='folder',        # folder (images + masks) | synthetic (generated) | prepared (a TFDS build)
      data_dir='',            # the folder: e.g. the lab's data/ with CameraRGB/, CameraMask/; or the build
      tfds_data_dir='',       # where the TFDS build is kept; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
      stored_size=(),         # (H, W) the build stores frames at (smaller copies); () = as read
      # Where frames lie (unet_jax/data/layouts.py): folder | split_folders | list_files.
      layout='folder',
      image_subdir='CameraRGB',  # layout=folder: images NAME.png / .jpg under data_dir/image_subdir
      mask_subdir='CameraMask',  # layout=folder: masks NAME.png under data_dir/mask_subdir
      image_dir_pattern='',   # layout=split_folders: e.g. 'images/{split}'; '' = find a common naming
      mask_dir_pattern='',    # layout=split_folders: e.g. 'annotations/{split}'
      list_files=ml_collections.ConfigDict(dict(  # layout=list_files: "IMAGE MASK" lines per split
          train='', validation='', test='')),
      path_prefix_map='',     # layout=list_files: 'OLD=NEW' rewrites absolute path prefixes
      mask_encoding='channel0',  # channel0 (the lab) | single_channel (8/16-bit) | paletted | palette
      palette=(),             # mask_encoding=palette: one (R, G, B) per class
      palette_file='',        # mask_encoding=palette: a name,r,g,b CSV (sets palette, class_names)
      label_map=(),           # (raw id, training id) pairs; every raw id in the masks must be listed
      label_map_file='',      # the same as "RAW TRAIN" lines (TRAIN may be 'ignore')
      skip_bad_pairs=False,   # unreadable / unmatched / invalid pairs: error, or skip and log
      image_size=(96, 128),   # (H, W) the model trains at
      num_classes=23,
      class_names=CARLA_CLASS_NAMES,
      ignore_label=-1,        # mask value excluded from loss and metrics; -1: none
      val_fraction=0.2,       # of clips, not frames: splits are drawn by clip
      test_fraction=0.0,
      split_seed=0,
      clip_gap=40,            # a frame-number jump above this starts a clip
      split_file='',          # optional "NAME SPLIT" lines; replaces the clip split
      augment=ml_collections.ConfigDict(dict(  # training only; all off for evaluation
          hflip=False,            # random horizontal flip of image and mask together
          scale_range=(1.0, 1.0),  # zoom by a factor in [lo, hi] (lo >= 1), then crop
          brightness=0.0,         # max brightness shift, in [0, 1] of the pixel range
          contrast=0.0,           # contrast factor in [1 - c, 1 + c]
          saturation=0.0,         # saturation factor in [1 - s, 1 + s]
          on_device=False,        # run it in the jitted train step, not in tf.data
      )),
      synthetic=ml_collections.ConfigDict(dict(
          num_clips=40, frames_per_clip=12, height=192, width=256, seed=0)),
  ))

  config.model = lab_model()

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adam',            # adam | adamw | sgd
      learning_rate=1e-3,
      schedule='constant',    # constant | warmup_cosine | piecewise
      warmup_steps=0,
      end_lr_factor=0.0,      # warmup_cosine: final lr = learning_rate * this
      piecewise_boundaries=(0.5, 0.75),  # fractions of training
      piecewise_scales=(0.1, 0.1),       # lr multiplied by each at its boundary
      b1=0.9, b2=0.999,
      momentum=0.9, nesterov=False,
      weight_decay=0.0,
      grad_clip_norm=0.0,     # 0: no clipping
  ))

  config.loss = ml_collections.ConfigDict(dict(
      class_weights=(),       # one per class, or empty for none
      class_weighting='none',  # none | median_frequency (from the training masks; sets class_weights)
      dice_weight=0.0,        # adds dice_weight x (1 - soft Dice) to the cross-entropy
      lovasz_weight=0.0,      # adds lovasz_weight x Lovasz-softmax (an mIoU surrogate)
  ))

  # Further training stages in this run, each from the previous one's weights:
  # ((name, {'dotted.field': value, ...}), ...); see unet_jax/stages.py.
  config.stages = ()
  # Start from another run's weights (a fine-tuning stage); a resumed run ignores it.
  config.init_from = ''          # workdir of a finished run with the same model
  config.init_checkpoint = 'latest'  # of that run: latest | best | a step

  config.train_input_scales = ()  # training: each step runs at one of these input_scales; () = model's
  config.batch_size = 32      # global, over all devices and hosts
  config.eval_batch_size = 32
  config.eval_hflip = False    # evaluation: average the predictions of each frame and its mirror
  config.eval_input_scales = ()  # evaluation: mean prediction over these input_scales; () = model's
  config.num_epochs = 40.0
  config.num_train_steps = -1  # > 0 overrides num_epochs
  config.log_every_steps = 20
  config.eval_every_steps = 200
  config.checkpoint_every_steps = 200
  config.keep_checkpoints = 3
  config.prefetch_batches = 2
  config.cpu_devices = 0       # CPU only: XLA devices to split the batch over; 0 = auto (unet_jax/host.py)
  config.num_panels = 4        # validation frames drawn to TensorBoard at each eval
  config.nonfinite = 'stop'   # NaN/inf loss or gradient: stop (naming the step) | skip the update
  return config
