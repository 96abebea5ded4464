"""Entry point: `python main.py --config=configs/synthetic.py --workdir=/tmp/run`.

Flags:
  --config   a configs/*.py file; override fields with --config.a.b=value.
  --workdir  where checkpoints, TensorBoard events and reports go. Running
             again with the same workdir resumes from the newest checkpoint.
"""

import logging as py_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and reports.')
flags.DEFINE_enum('mode', 'train', ['train'], 'What to do with the config and workdir.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def _hide_orbax_info(record: py_logging.LogRecord) -> bool:
  # Orbax logs a dozen INFO lines per save; keep its warnings and errors.
  return record.levelno >= py_logging.WARNING or '/orbax/' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_hide_orbax_info)
  # TensorFlow (used for TFDS and summaries only) must not grab accelerators.
  import tensorflow as tf
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')

  import jax
  from unet_jax import errors, train
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except errors.UserError as e:
    # A mistake the user can fix: the message says what and where; no traceback.
    logging.error('%s: %s', type(e).__name__, e)
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
