"""Training stages declared in the config, run in one workdir by one command."""

import json
import logging

import pytest

from unet_jax import errors, restore, stages


def _staged(config):
  config.stages = (('upscaled', {'model.input_scale': 2.0, 'num_train_steps': 2,
                                 'optimizer.learning_rate': 1e-4}),
                   ('multiscale', {'train_input_scales': (1.0, 2.0), 'num_train_steps': 2}))
  return config


def test_stage_configs_apply_their_overrides_to_the_base(config):
  (_, base), (_, upscaled), (_, multi) = stages.stage_configs(_staged(config))
  assert base.stages == () and base.model.input_scale == 1.0 and base.num_train_steps == 4
  assert upscaled.model.input_scale == 2.0 and upscaled.optimizer.learning_rate == 1e-4
  assert multi.model.input_scale == 1.0 and multi.train_input_scales == (1.0, 2.0)


@pytest.mark.parametrize('stage, message', [
    (('x', {'model.widthz': 3}), "stages 'x': cannot set model.widthz"),
    (('x', {'init_from': '/tmp/a'}), 'set by the stages themselves'),
    (('base', {}), "name 'base' is empty, has a \"/\" or is used twice"),
    (('x',), r'must be \(name, \{field: value\}\)'),
])
def test_bad_stages_are_named_before_any_work(config, tmp_path, stage, message):
  config.stages = (stage,)
  with pytest.raises(errors.ConfigError, match=message):
    stages.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'stages').exists()


def test_stages_train_in_turn_resume_and_evaluate_as_the_final_stage(config, tmp_path, caplog):
  workdir = tmp_path / 'run'
  with caplog.at_level(logging.INFO):
    stages.train_and_evaluate(_staged(config), str(workdir))
  for folder, step in (('0-base', 4), ('1-upscaled', 2), ('2-multiscale', 2)):
    assert (workdir / 'stages' / folder / 'checkpoints' / str(step)).exists(), folder
  assert caplog.text.count('Initialised from') == 2  # each stage from the one before
  final = json.loads((workdir / 'eval_results.json').read_text())
  assert final['stage'] == 'multiscale' and final['stage_workdir'].endswith('2-multiscale')
  # --mode=eval/predict/export on the top workdir use the final stage.
  assert restore.trained_workdir(str(workdir)).endswith('2-multiscale')
  saved = restore.load_config(str(workdir))
  assert [name for name, _ in saved.stages] == ['upscaled', 'multiscale']
  # The same command again trains nothing more.
  caplog.clear()
  with caplog.at_level(logging.INFO):
    stages.train_and_evaluate(_staged(config), str(workdir))
  assert caplog.text.count('finished earlier') == 3 and 'Resuming' not in caplog.text
  # Another stage list is refused on this workdir.
  config.stages = (('other', {}),)
  with pytest.raises(errors.ConfigError, match=r"holds a run with stages \['base', 'upscaled'"):
    stages.train_and_evaluate(config, str(workdir))
