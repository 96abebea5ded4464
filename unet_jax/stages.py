"""Training in stages declared by the config: one command, one workdir.

    config.stages = (
        ('192x256', {'data.image_size': (192, 256), 'batch_size': 8, 'num_train_steps': 240}),
        ('multiscale', {'train_input_scales': (1.0, 1.5, 2.0), 'num_train_steps': 360}),
    )

The config without `stages` is the first stage ('base'); each further stage is
that config with its overrides (dotted field names), started from the
previous stage's final weights with a fresh optimizer, schedule and step count
(as `config.init_from` does). Stage i trains in `workdir/stages/<i>-<name>/`, a
workdir of its own: it resumes, locks, refuses and reports like any run, and
a finished stage (its `eval_results.json` exists) is not trained again. So the
same command resumes a staged run wherever it stopped. The top workdir holds
the whole config (`config.json`) and, once done, the final stage's
`eval_results.json`; `--mode=eval/predict/export --workdir=TOP` use the final
stage (`restore.trained_workdir`).
"""

import ml_collections
from absl import logging
from etils import epath

from unet_jax import checkpointing, reports, restore, train
from unet_jax import workdir as workdir_lib
from unet_jax.errors import ConfigError

BASE = 'base'


def stage_configs(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(name, config)] of every stage, overrides applied and checked (ConfigError names them)."""
  base = config.copy_and_resolve_references()
  with base.unlocked():
    base.stages = ()
  stages = [(BASE, base)]
  for number, spec in enumerate(config.stages, 1):
    try:
      name, overrides = spec
      overrides = dict(overrides)
    except (TypeError, ValueError):
      raise ConfigError(f'config.stages[{number - 1}] must be (name, {{field: value}}), '
                        f'got {spec!r}') from None
    if not name or '/' in name or name in [n for n, _ in stages]:
      raise ConfigError(f'config.stages[{number - 1}]: name {name!r} is empty, has a "/" or '
                        f'is used twice')
    stage = base.copy_and_resolve_references()
    for key, value in overrides.items():
      if key.split('.')[0] in ('stages', 'init_from', 'init_checkpoint'):
        raise ConfigError(f'config.stages {name!r}: {key} is set by the stages themselves')
      *parents, field = key.split('.')
      node = stage
      try:
        for parent in parents:
          node = node[parent]
        if field not in node:
          raise KeyError(field)
        node[field] = type(node[field])(value) if isinstance(node[field], tuple) else value
      except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f'config.stages {name!r}: cannot set {key}={value!r} ({e})') from None
    stages.append((name, stage))
  return stages


def stage_dir(workdir: str, index: int, name: str) -> str:
  return str(epath.Path(workdir) / 'stages' / f'{index}-{name}')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains every stage of `config` in turn (see the module docstring)."""
  stages = stage_configs(config)
  workdir = checkpointing.absolute(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  previous = ''
  summary: dict[str, float] = {}
  with workdir_lib.exclusive(workdir):
    _check_same_stages(workdir, stages)
    workdir_lib.record_config(workdir, config.to_json_best_effort(indent=2))
    for index, (name, stage) in enumerate(stages):
      where = stage_dir(workdir, index, name)
      if previous:
        stage.init_from, stage.init_checkpoint = previous, 'latest'
      done = reports.read_eval_results(where)
      if done is not None:
        logging.info('Stage %d/%d (%s) finished earlier: mIoU %.4f', index + 1, len(stages),
                     name, done['mean_iou'])
        summary = done
      else:
        logging.info('Stage %d/%d: %s, in %s', index + 1, len(stages), name, where)
        summary = train.train_and_evaluate(stage, where)
        if summary.get('preempted'):
          return summary
      previous = where
    final = reports.read_eval_results(previous) or summary
    workdir_lib.write_json(epath.Path(workdir) / reports.EVAL_RESULTS,
                           {**final, 'stage': stages[-1][0], 'stage_workdir': previous})
  return summary


def _check_same_stages(workdir: str, stages: list) -> None:
  """A workdir of a staged run resumes only with the same stage names (its folders)."""
  path = epath.Path(workdir) / workdir_lib.CONFIG
  if not path.exists():
    return
  saved = restore.load_config(workdir)
  names = [BASE] + [s[0] for s in saved.get('stages', ())]
  if names != [n for n, _ in stages]:
    raise ConfigError(f'{workdir} holds a run with stages {names}; this config has '
                      f'{[n for n, _ in stages]}. Use a fresh --workdir.')
