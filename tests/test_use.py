"""Using a trained model: eval reports, predict outputs, best checkpoint, export."""

import json
import logging
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, subprocess_env, tiny_config
from unet_jax import (errors, evaluate, export, models, optim, predict, reports, restore, train,
                      views, visualize)
from unet_jax.data import reading


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A tiny run of 10 steps with evaluations every 2 steps."""
  config = tiny_config()
  config.num_train_steps = 10
  workdir = tmp_path_factory.mktemp('trained')
  train.train_and_evaluate(config, str(workdir))
  return config, workdir


def _model_classes(config, workdir, images, checkpoint='latest'):
  state, _ = restore.restore_state(config, str(workdir), checkpoint)
  return np.asarray(views.predict_classes(state, images))


def test_eval_mode_writes_consistent_reports_and_is_repeatable(trained, tmp_path):
  config, workdir = trained
  a = evaluate.evaluate_checkpoint(config, str(workdir), output_dir=str(tmp_path / 'a'))
  b = evaluate.evaluate_checkpoint(config, str(workdir), output_dir=str(tmp_path / 'b'))
  assert a.keys() == b.keys()
  np.testing.assert_array_equal(list(a.values()), list(b.values()))  # NaN == NaN here
  saved = json.loads((tmp_path / 'a' / 'metrics.json').read_text())
  cm = np.array(saved['confusion_matrix'])
  h, w = config.data.image_size
  assert cm.shape == (23, 23) and cm.sum() == saved['frames'] * h * w
  assert saved['mean_iou'] == pytest.approx(a['mean_iou'])
  assert saved['pixel_accuracy'] == pytest.approx(np.trace(cm) / cm.sum())
  per_class = {r['name']: r for r in saved['per_class']}
  assert per_class['Road']['true_pixels'] == cm[7].sum()
  csv_lines = (tmp_path / 'a' / 'per_class.csv').read_text().splitlines()
  assert csv_lines[0].startswith('class,name,iou,dice') and len(csv_lines) == 24
  assert '| mean_iou |' in (tmp_path / 'a' / 'report.md').read_text()
  assert Image.open(tmp_path / 'a' / 'confusion.png').size[0] > 200
  # A folder in the lab layout is scored the same way (all of its frames).
  folder = evaluate.evaluate_checkpoint(config, str(workdir), checkpoint='best',
                                        data_dir=str(workdir / 'synthetic_data'),
                                        output_dir=str(tmp_path / 'folder'))
  assert json.loads((tmp_path / 'folder' / 'metrics.json').read_text())['frames'] == 24
  assert 0 <= folder['mean_iou'] <= 1


def test_best_checkpoint_is_the_best_evaluated_step(trained):
  config, workdir = trained
  evals = [r for r in reports.read_history(str(workdir)) if 'eval/mean_iou' in r]
  assert [r['step'] for r in evals] == [2, 4, 6, 8, 10]
  best = max(evals, key=lambda r: r['eval/mean_iou'])
  record = json.loads((workdir / 'best.json').read_text())
  assert record['step'] == best['step']
  assert [p.name for p in (workdir / 'checkpoints_best').iterdir()] == [str(best['step'])]
  assert json.loads((workdir / 'eval_results.json').read_text())['best_step'] == best['step']
  _, step = restore.restore_state(config, str(workdir), 'best')
  assert step == best['step']


def test_training_writes_panels_to_tensorboard_and_a_curve_plot(trained):
  _, workdir = trained
  tags = set()
  for event_file in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags |= {v.tag for v in event.summary.value}
  assert 'eval/predictions' in tags and 'eval/mean_iou' in tags
  curves = Image.open(workdir / 'training_curves.png')
  assert curves.size[0] > 500 and np.asarray(curves).std() > 0


@pytest.mark.parametrize('size_mode', ['resize', 'pad'])
def test_predict_writes_masks_that_match_the_model(trained, tmp_path, size_mode):
  config, workdir = trained
  src = workdir / 'synthetic_data' / 'CameraRGB'
  inputs = tmp_path / 'in' / 'CameraRGB'  # lab layout, so truths are found
  (tmp_path / 'in' / 'CameraMask').mkdir(parents=True)
  inputs.mkdir()
  for name in ('000100', '000101'):
    (inputs / f'{name}.png').write_bytes((src / f'{name}.png').read_bytes())
    (tmp_path / 'in' / 'CameraMask' / f'{name}.png').write_bytes(
        (src.parent / 'CameraMask' / f'{name}.png').read_bytes())
  odd = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
  Image.fromarray(odd).save(inputs / 'odd.jpg')
  (inputs / 'broken.png').write_bytes(b'not a png')
  out = tmp_path / 'out'
  counts = predict.predict_files(config, str(workdir), str(inputs), str(out),
                                 size_mode=size_mode, batch_size=2)
  assert counts == {'written': 3, 'failed': 1}
  assert not (out / 'masks' / 'broken.png').exists()

  original = np.asarray(Image.open(inputs / '000100.png'))[..., :3]
  mask = np.asarray(Image.open(out / 'masks' / '000100.png'))
  assert mask.dtype == np.uint8 and mask.shape == (*original.shape[:2], 4)
  assert (mask[..., 1:3] == 0).all() and (mask[..., 3] == 255).all()
  odd_mask = np.asarray(Image.open(out / 'masks' / 'odd.png'))
  assert odd_mask.shape == (37, 53, 4)

  # The written mask is the model's argmax on the prepared input, mapped back.
  multiple = 2 ** (len(models.level_widths(config.model)) - 1)
  model_in, back = predict.to_model_input(original, config.data.image_size, size_mode, multiple)
  expected = back(_model_classes(config, workdir, model_in[None])[0])
  np.testing.assert_array_equal(mask[..., 0], expected)
  np.testing.assert_array_equal(np.asarray(Image.open(out / 'color' / '000100.png')),
                                visualize.colorize(expected, 23))

  # Panel: image | truth | prediction, the prediction tile is the coloured argmax.
  panel = np.asarray(Image.open(out / 'panels' / '000100.png'))
  h, w = expected.shape
  origins = visualize.tile_origins(h, w, 3)
  (y, x) = origins[2]
  np.testing.assert_array_equal(panel[y:y + h, x:x + w], visualize.colorize(expected, 23))
  truth = reading.read_pair(reading.Pair('000100', inputs / '000100.png',
                                           tmp_path / 'in' / 'CameraMask' / '000100.png'))[1]
  (y, x) = origins[1]
  np.testing.assert_array_equal(panel[y:y + h, x:x + w], visualize.colorize(truth, 23))


@pytest.mark.slow
def test_exported_model_runs_without_unet_jax_and_agrees(trained, tmp_path):
  config, workdir = trained
  path = export.export_checkpoint(config, str(workdir), str(tmp_path))
  h, w = config.data.image_size
  images = np.random.default_rng(1).integers(0, 255, (3, h, w, 3), dtype=np.uint8)
  np.save(tmp_path / 'images.npy', images)
  child = f'''
import sys, jax, numpy as np
fn = jax.export.deserialize(open({str(path)!r}, 'rb').read())
classes, logits = fn.call(np.load({str(tmp_path / 'images.npy')!r}))
assert not any(m.startswith('unet_jax') for m in sys.modules)
np.save({str(tmp_path / 'classes.npy')!r}, np.asarray(classes))
np.save({str(tmp_path / 'logits.npy')!r}, np.asarray(logits))
'''
  subprocess.run([sys.executable, '-c', child], check=True, cwd=tmp_path)
  expected = _model_classes(config, workdir, images)
  np.testing.assert_array_equal(np.load(tmp_path / 'classes.npy'), expected)
  meta = json.loads((tmp_path / 'export.json').read_text())
  assert meta['class_names'][7] == 'Road' and meta['input']['shape'] == ['batch', h, w, 3]
  assert np.load(tmp_path / 'logits.npy').shape == (3, h, w, 23)


def test_init_from_starts_a_new_run_from_another_runs_weights(trained, tmp_path, caplog):
  config, workdir = trained
  source, step = restore.restore_state(config, str(workdir), 'latest')
  finetune = tiny_config()
  finetune.init_from = str(workdir)
  finetune.loss.lovasz_weight = 1.0
  model = models.create_model(finetune.model, finetune.data.num_classes)
  tx, _ = optim.create_optimizer(finetune.optimizer, 10)
  fresh = train.create_train_state(finetune, model, tx, jax.random.key(5))
  started = restore.initialize_from(fresh, finetune)
  assert int(started.step) == 0 and step == 10
  jax.tree.map(np.testing.assert_array_equal, started.params, source.params)
  jax.tree.map(np.testing.assert_array_equal, started.batch_stats, source.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, started.opt_state, fresh.opt_state)

  finetune.num_train_steps = 2
  with caplog.at_level(logging.INFO):
    summary = train.train_and_evaluate(finetune, str(tmp_path / 'finetune'))
  assert f'Initialised from {workdir}, checkpoint latest (step 10)' in caplog.text
  assert np.isfinite(summary['loss'])


@pytest.mark.parametrize('problem', ['missing', 'other_model', 'no_step'])
def test_init_from_rejects_a_bad_source_naming_the_option(trained, tmp_path, problem):
  config, workdir = trained
  finetune = tiny_config()
  finetune.init_from = str(tmp_path / 'nowhere') if problem == 'missing' else str(workdir)
  if problem == 'other_model':
    finetune.model.width = 8
  if problem == 'no_step':
    finetune.init_checkpoint = '3'
  model = models.create_model(finetune.model, finetune.data.num_classes)
  tx, _ = optim.create_optimizer(finetune.optimizer, 10)
  state = train.create_train_state(finetune, model, tx, jax.random.key(0))
  expected = {'missing': 'config.json not found', 'other_model': 'holds another model.*widths',
              'no_step': 'no checkpoint at step 3'}[problem]
  with pytest.raises(errors.ConfigError, match=f'config.init_from=.*{expected}'):
    restore.initialize_from(state, finetune)


def test_eval_hflip_is_mirror_equivariant_and_scores_in_eval_mode(trained, tmp_path):
  config, workdir = trained
  state, _ = restore.restore_state(config, str(workdir), 'latest')
  h, w = config.data.image_size
  images = np.random.default_rng(3).integers(0, 255, (2, h, w, 3), dtype=np.uint8)
  plain = np.asarray(views.eval_logits(state, images, hflip=False))
  both = np.asarray(views.eval_logits(state, images, hflip=True))
  mirrored = np.asarray(views.eval_logits(state, images[:, :, ::-1], hflip=True))
  # The average of the two views does not depend on which view came first...
  np.testing.assert_allclose(mirrored[:, :, ::-1], both, atol=1e-5)
  # ...whereas a single view does: the check above is not vacuous.
  assert np.abs(np.asarray(views.eval_logits(state, images[:, :, ::-1], hflip=False))[:, :, ::-1]
                - plain).max() > 1e-3
  np.testing.assert_allclose(np.exp(both).sum(-1), 1.0, rtol=1e-5)  # log-probabilities

  config = config.copy_and_resolve_references()
  config.eval_hflip = True
  summary = evaluate.evaluate_checkpoint(config, str(workdir), output_dir=str(tmp_path))
  assert json.loads((tmp_path / 'metrics.json').read_text())['hflip'] is True
  assert 0.0 <= summary['mean_iou'] <= 1.0


def _log_mean_softmax(logits):
  probs = np.exp(np.asarray(jax.nn.log_softmax(np.stack(logits).astype(np.float64))))
  return np.log(probs.mean(0))


def test_eval_input_scales_average_one_view_per_scale(trained, tmp_path):
  config, workdir = trained
  state, _ = restore.restore_state(config, str(workdir), 'latest')
  h, w = config.data.image_size
  images = np.random.default_rng(4).integers(0, 255, (2, h, w, 3), dtype=np.uint8)
  config = config.copy_and_resolve_references()
  config.eval_input_scales = (1.0, 2.0)
  at_1, at_2 = views.eval_models(config)
  assert (at_1.input_scale, at_2.input_scale) == (1.0, 2.0)
  single = [np.asarray(views.eval_logits(state, images, False, (m,))) for m in (at_1, at_2)]
  # Scale 1 is the trained model itself; scale 2 is another view (so the mean below is not
  # the mean of two equal things).
  np.testing.assert_allclose(single[0], views.eval_logits(state, images, False), atol=1e-5)
  assert np.abs(single[1] - single[0]).max() > 1e-3
  both = np.asarray(views.eval_logits(state, images, False, (at_1, at_2)))
  np.testing.assert_allclose(both, _log_mean_softmax(single), atol=1e-4)
  # With mirroring: four views, the mirror of each scale's.
  mirrored = [np.asarray(views.eval_logits(state, images[:, :, ::-1], False, (m,)))[:, :, ::-1]
              for m in (at_1, at_2)]
  np.testing.assert_allclose(views.eval_logits(state, images, True, (at_1, at_2)),
                             _log_mean_softmax(single + mirrored), atol=1e-4)

  config.eval_hflip = True
  evaluate.evaluate_checkpoint(config, str(workdir), output_dir=str(tmp_path))
  saved = json.loads((tmp_path / 'metrics.json').read_text())
  assert saved['input_scales'] == [1.0, 2.0] and saved['hflip'] is True


def test_predict_averages_the_views_evaluation_averages(trained, tmp_path):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval_hflip = True
  config.eval_input_scales = (1.0, 1.5)  # 1.5 needs sides that are multiples of 4 here
  (tmp_path / 'in').mkdir()
  odd = np.random.default_rng(5).integers(0, 255, (37, 53, 3), dtype=np.uint8)
  Image.fromarray(odd).save(tmp_path / 'in' / 'odd.png')
  counts = predict.predict_files(config, str(workdir), str(tmp_path / 'in'),
                                 str(tmp_path / 'out'), size_mode='pad')
  assert counts == {'written': 1, 'failed': 0}
  padded, back = predict.to_model_input(odd, config.data.image_size, 'pad', 4)
  assert padded.shape[:2] == (40, 56)
  state, _ = restore.restore_state(config, str(workdir), 'latest')
  logits = views.eval_logits(state, padded[None], True, views.eval_models(config))
  expected = back(np.argmax(np.asarray(logits)[0], -1))
  mask = np.asarray(Image.open(tmp_path / 'out' / 'masks' / 'odd.png'))[..., 0]
  np.testing.assert_array_equal(mask, expected)


def test_eval_input_scales_that_do_not_fit_are_named(trained):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval_input_scales = (2.0, 1.1)  # 32x48 frames x 1.1: fractional pixels
  with pytest.raises(errors.ConfigError, match='eval_input_scales entry 1.1 does not fit 32x48'):
    views.eval_models(config)
  result = subprocess.run([sys.executable, 'main.py', '--mode=eval', f'--workdir={workdir}',
                           '--input_scales=2,x'], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "--input_scales must be numbers separated by commas, got '2,x'" in result.stderr
