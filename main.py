"""Entry point: train, evaluate, predict with or export a U-Net.

  python main.py --config=configs/synthetic.py --workdir=/tmp/run       # train (resumes)
  python main.py --mode=eval --workdir=/tmp/run [--checkpoint=best] [--split=validation | --data_dir=DIR] [--hflip] [--input_scales=1.5,2]
  python main.py --mode=predict --workdir=/tmp/run --input='photos/*.png' --output_dir=/tmp/pred
  python main.py --mode=export --workdir=/tmp/run [--output_dir=/tmp/model]

Training needs --config (overrides: --config.a.b=value). The other modes read
the config the run wrote to <workdir>/config.json unless --config is given.
"""

import importlib.util
import logging as py_logging
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and reports.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'predict', 'export'], 'What to do.')
flags.DEFINE_string('checkpoint', 'latest', "eval/predict/export: 'latest', 'best' or a step.")
flags.DEFINE_string('split', 'validation', 'eval: split of the configured dataset.')
flags.DEFINE_string('data_dir', '', 'eval: a folder in the lab layout to score instead.')
flags.DEFINE_bool('hflip', False, 'eval: average each frame\'s prediction with its mirror\'s '
                  '(sets config.eval_hflip).')
flags.DEFINE_list('input_scales', [], 'eval: average the predictions of the model run at each of '
                  'these model.input_scale values, e.g. 1.5,2 (sets config.eval_input_scales).')
flags.DEFINE_string('input', '', 'predict: an image file, a folder or a glob.')
flags.DEFINE_string('mask_dir', '', 'predict: folder of true masks with the same names.')
flags.DEFINE_enum('size_mode', 'resize', ['resize', 'pad'],
                  'predict: resize to the training size, or pad to a size every evaluated '
                  'input scale accepts (a multiple of 2**depth at input_scale 1).')
flags.DEFINE_integer('batch_size', 8, 'predict: images per forward pass.')
flags.DEFINE_string('output_dir', '', 'eval/predict/export: where results go.')
flags.DEFINE_list('platforms', ['cpu'], 'export: platforms to compile for (cpu, cuda, tpu).')
flags.DEFINE_string('coordinator_address', '', 'Multi-process: host:port of process 0 '
                    '(default $JAX_COORDINATOR_ADDRESS; TPU pods and SLURM are detected).')
flags.DEFINE_integer('num_processes', 0, 'Multi-process: number of processes.')
flags.DEFINE_integer('process_id', -1, 'Multi-process: index of this process.')
config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
flags.mark_flags_as_required(['workdir'])


_REPO = os.path.dirname(os.path.abspath(__file__))
# TFDS: for every builder config we make, and before every first build.
_NOISE = ('Using custom data configuration', 'Variant folder ')


def _console_filter(record: py_logging.LogRecord) -> bool:
  """What a person reads: our own INFO lines, everyone's warnings and errors.

  Libraries' INFO lines (Orbax's dozen per save, TFDS's, clu's scalar lines and
  parameter table) go to the console only with --verbosity=1 or more; they
  stay in TensorBoard and the history file either way.
  """
  if FLAGS.verbosity >= 1:
    return True
  if record.getMessage().startswith(_NOISE):
    return False
  return record.levelno >= py_logging.WARNING or record.pathname.startswith(_REPO + os.sep) and (
      '/site-packages/' not in record.pathname)


def _run(config, errors) -> int:
  from unet_jax import evaluate, export, predict, restore, stages, train
  if FLAGS.mode == 'train':
    if config is None:
      raise errors.ConfigError('--config is required for --mode=train')
    (stages if config.stages else train).train_and_evaluate(config, FLAGS.workdir)
    return 0
  workdir = restore.trained_workdir(FLAGS.workdir)  # a staged run: its final stage
  config = config or restore.load_config(workdir)
  if FLAGS.mode == 'eval':
    if FLAGS.hflip:
      config.eval_hflip = True
    if FLAGS.input_scales:
      config.eval_input_scales = tuple(_floats('--input_scales', FLAGS.input_scales, errors))
    evaluate.evaluate_checkpoint(config, workdir, checkpoint=FLAGS.checkpoint,
                                 split=FLAGS.split, data_dir=FLAGS.data_dir,
                                 output_dir=FLAGS.output_dir)
  elif FLAGS.mode == 'predict':
    if not FLAGS.input or not FLAGS.output_dir:
      raise errors.ConfigError('--mode=predict needs --input and --output_dir')
    counts = predict.predict_files(config, workdir, FLAGS.input, FLAGS.output_dir,
                                   checkpoint=FLAGS.checkpoint, size_mode=FLAGS.size_mode,
                                   batch_size=FLAGS.batch_size, mask_dir=FLAGS.mask_dir)
    return 1 if counts['failed'] else 0
  elif FLAGS.mode == 'export':
    export.export_checkpoint(config, workdir, FLAGS.output_dir,
                             checkpoint=FLAGS.checkpoint, platforms=tuple(FLAGS.platforms))
  return 0


def _floats(flag: str, values: list[str], errors) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError:
    raise errors.ConfigError(f'{flag} must be numbers separated by commas, got '
                             f'{",".join(values)!r}') from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  _check_config_file()
  logging.get_absl_handler().addFilter(_console_filter)
  if FLAGS.verbosity < 1:  # TensorFlow's C++ start-up notices (oneDNN, CPU features)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if FLAGS.verbosity < 1 and importlib.util.find_spec('tensorflow_datasets'):
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()  # a dataset build logs one line instead

  import jax
  from unet_jax import checkpointing, distributed, errors, host
  if FLAGS.mode == 'train' and FLAGS.config is not None:
    host.configure_cpu_devices(FLAGS.config)  # before JAX's backends start
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if jax.default_backend() != 'cpu':
    _hide_accelerators_from_tensorflow()
  try:
    return _run(FLAGS.config, errors)
  except errors.UserError as e:
    # A mistake the user can fix: the message says what and where; no traceback.
    logging.error('%s: %s', type(e).__name__, e)
    checkpointing.quiet_exit()
    # The line is the last word: os._exit skips interpreter teardown, where Orbax's
    # threads could still print a failed save's error after it (train closed its
    # checkpoint managers and writers on the way out, so nothing is left unfinished).
    py_logging.shutdown()
    sys.stdout.flush()
    sys.__stderr__.write(f'error: {e}\n')
    sys.__stderr__.flush()
    os._exit(1)


def _hide_accelerators_from_tensorflow() -> None:
  """TensorFlow, where installed, builds datasets and runs tf.data: never on accelerators.

  Nothing else needs it (datasets are read as array_record files, metrics written
  by `metric_writer`), so it is imported here only on accelerator hosts that
  have it, before any TensorFlow op could claim a device; elsewhere, on first use.
  """
  if importlib.util.find_spec('tensorflow') is None:
    return
  import tensorflow as tf
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


def _check_config_file() -> None:
  """A --config file that cannot be loaded is one error line, before any slow import."""
  try:
    if FLAGS.config is not None:
      FLAGS.config.get('seed')  # a file that failed to load raises on any use
  except OSError as e:
    reason = str(e).strip().splitlines()[-1].strip()
    sys.exit(f'error: cannot load --config={FLAGS["config"].config_filename}: {reason}')


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with config override mistakes as one line, not a traceback."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for unknown keys and mistyped values.
    text = ' '.join(str(e.args[0] if e.args else e).replace('\\n', ' ').split())
    hint = re.search(r'Did you mean "([\w.]+)" instead of "([\w.]+)"', text)
    if hint:
      text = f'unknown key {hint.group(2)!r} (did you mean {hint.group(1)!r}?)'
    sys.exit(f'error: bad --config override: {text}')


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
