"""Prepares a config's dataset once and prints its folder, to copy where training runs.

  python -m unet_jax.data.prepare --config=configs/carla.py \
      --config.data.data_dir=../shared/data/carla_lab/320x240 \
      [--config.data.stored_size='(120,160)'] [--config.data.tfds_data_dir=DIR]

The last line printed is the prepared dataset's folder (NAME/CONFIG/VERSION).
A host without TensorFlow, or without the source frames, trains on a copy of it:
  python main.py --config=configs/carla.py --workdir=W --config.data.source=prepared \
      --config.data.data_dir=COPY --config.data.augment.on_device=True
Preparing needs TensorFlow (TFDS writes the files with it); reading does not.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from unet_jax.data import loading
from unet_jax.errors import UserError


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = flags.FLAGS.config
  if config.data.source != 'folder':
    sys.exit(f"error: config.data.source={config.data.source!r}: only 'folder' datasets are "
             'prepared from source frames')
  try:
    root = loading.resolve_data_dir(config.data, '')
    print(loading.prepared_builder(config.data, root).data_dir)
  except UserError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
  flags.mark_flags_as_required(['config'])
  app.run(main)
