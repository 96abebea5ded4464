"""The speed harness runs end to end on tiny cells (numbers are not checked: see bench/)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env


@pytest.mark.slow
def test_harness_times_ours_and_keras_interleaved(tmp_path):
  out = tmp_path / 'bench.json'
  result = subprocess.run(
      # 16x17 is no multiple of 16: that cell fails, saying why, and the others still run.
      [sys.executable, '-m', 'bench.run', '--cells=train:16x16x2,train:16x17x2,infer:16x16x2',
       '--rounds=2',
       '--window_s=0.05', '--subjects=ours_f32,keras,fastlayers_f32', f'--out={out}',
       '--pipeline_data_dir='],  # generated frames
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  report = json.loads(out.read_text())
  assert set(report['matmul_gflops']) == {'float32', 'bfloat16'}
  assert [(c['mode'], c['batch']) for c in report['cells']] == [('train', 2), ('infer', 2)]
  for cell in report['cells']:
    # The same lab model in every subject, two timed windows each.
    assert set(cell['params'].values()) == {8_640_471}
    assert all(len(v) == 2 and min(v) > 0 for v in cell['all_images_per_s'].values())
    assert set(cell['peak_rss_mb']) == {'ours_f32', 'keras', 'fastlayers_f32'}
  train = report['cells'][0]
  # FLOPs are the whole step's: ours split over 2 CPU devices (on a 2-core machine)
  # counts as much as one device (a compiled split step would count one part).
  flops = train['flops_per_image']
  assert abs(flops['ours_f32'] / flops['fastlayers_f32'] - 1) < 0.05
  assert '| train 16x16 b2 |' in result.stdout
  pipeline = report['pipeline']
  assert pipeline['data_dir'] == 'generated' and pipeline['batch'] == 32
  assert len(pipeline['all_images_per_s']['pipeline']) == 2
  assert 'Input pipeline (batch 32, 96x128, augmented' in result.stdout
  assert list(report['failed_cells']) == ['train:16x17x2']
  assert 'input size 16x17 is not a multiple of' in report['failed_cells']['train:16x17x2']
  assert 'Failed cells (see above): train:16x17x2' in result.stdout

  # bench.flops counts the same FLOPs on the CPU for a results file from elsewhere (a GPU's).
  for cell in report['cells']:
    del cell['flops_per_image']
  out.write_text(json.dumps(report))
  result = subprocess.run([sys.executable, '-m', 'bench.flops', f'--results={out}'], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  recounted = json.loads(out.read_text())
  assert recounted['flops_counted_on'] == 'cpu (bench.flops)'
  for cell in recounted['cells']:
    assert set(cell['flops_per_image']) == {'ours_f32', 'fastlayers_f32'}  # ours only
  assert recounted['cells'][0]['flops_per_image'] == pytest.approx(flops, rel=1e-6)
  assert '| train 16x16 b2 |' in result.stdout


@pytest.mark.slow
def test_on_device_augmentation_bench_runs_without_tensorflow(tmp_path):
  out = tmp_path / 'augment.json'
  code = ('import runpy, sys; '
          "sys.modules['tensorflow'] = sys.modules['tensorflow_datasets'] = None; "
          "runpy.run_module('bench.augment_on_device', run_name='__main__')")
  result = subprocess.run(
      [sys.executable, '-c', code, '--cells=16x16x2', '--feed_cells=16x16x2,32x32x4',
       '--steps=1', '--rounds=2', f'--out={out}'],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  report = json.loads(out.read_text())
  [cell] = report['steps']
  assert all(len(t) == 2 and min(t) > 0 for t in cell['all_seconds_per_step'].values())
  assert cell['on_device_over_bare'] > 0
  assert [f['cache_size'] for f in report['host_feed']] == [[24, 24], [48, 48]]  # zoom 1.5
  assert all(f['images_per_s_per_core'] > 0 for f in report['host_feed'])
  assert report['peak_rss_mb'] > 0
