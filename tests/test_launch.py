"""Launch scripts against stub gcloud / sbatch / srun / scontrol / python on PATH."""

import os
import signal
import subprocess
import time

import pytest

from conftest import REPO

STUB = r'''#!/usr/bin/env bash
name=$(basename "$0")
echo "$name $*" >> "$STUB_LOG"
case "$name $*" in
  "gcloud compute tpus tpu-vm describe"*)
    state=$(head -n 1 "$STUB_DIR/states"); sed -i 1d "$STUB_DIR/states"; echo "${state:-READY}" ;;
  "gcloud storage ls"*)
    n=$(( $(cat "$STUB_DIR/ls_calls" 2>/dev/null || echo 0) + 1 )); echo $n > "$STUB_DIR/ls_calls"
    [[ $n -ge 2 ]] || exit 1 ;;
  srun*)
    # A training step that checkpoints and exits 0 on SIGTERM, like main.py.
    trap 'echo "srun got TERM" >> "$STUB_LOG"; exit 0' TERM
    for _ in $(seq 300); do sleep 0.1; done ;;
esac
exit 0
'''


@pytest.fixture
def stubs(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name in ('gcloud', 'sbatch', 'srun', 'scontrol', 'fake-python', 'mkdir'):
    (bin_dir / name).write_text(STUB)
    (bin_dir / name).chmod(0o755)
  log = tmp_path / 'calls.log'
  log.touch()
  env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', STUB_LOG=str(log),
             STUB_DIR=str(tmp_path), PYTHON='fake-python')
  return env, log, tmp_path


def _run(args, env):
  result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  return result.stdout


TPU = ['launch/tpu_vm.sh', 'run', '--project=proj', '--zone=us-central2-b', '--name=unet-v4',
       '--accelerator=v4-32', '--spot', '--config=configs/carla.py',
       '--workdir=gs://bucket/runs/a', '--data_dir=gs://bucket/carla', '--poll_seconds=0',
       '--', '--config.batch_size=256']


@pytest.mark.slow
def test_tpu_vm_run_restarts_a_preempted_vm_into_the_same_workdir(stubs):
  env, log, tmp = stubs
  (tmp / 'states').write_text('PREEMPTED\n')
  out = _run(TPU, env)
  calls = log.read_text().splitlines()
  creates = [c for c in calls if 'tpu-vm create' in c]
  assert len(creates) == 2  # the first VM, and its replacement after preemption
  assert all('--accelerator-type=v4-32' in c and '--spot' in c and '--zone=us-central2-b' in c
             and '--project=proj' in c for c in creates)
  assert any('tpu-vm delete unet-v4' in c for c in calls)
  trains = [c for c in calls if 'python main.py' in c]
  assert len(trains) == 2
  for c in trains:
    assert '--worker=all' in c
    assert '--config=configs/carla.py --workdir=gs://bucket/runs/a' in c
    assert '--config.data.data_dir=gs://bucket/carla --config.batch_size=256' in c
  setups = [c for c in calls if "jax[tpu]" in c]
  assert len(setups) == 2 and all('--worker=all' in c for c in setups)
  assert 'training finished: gs://bucket/runs/a/eval_results.json' in out


@pytest.mark.slow
def test_tpu_vm_dry_run_prints_commands_and_runs_none(stubs):
  env, log, _ = stubs
  out = _run(TPU + [], env | {'DRY_RUN': '1'})
  assert log.read_text() == ''
  assert '+ gcloud compute tpus tpu-vm create unet-v4' in out
  assert 'main.py --config=configs/carla.py --workdir=gs://bucket/runs/a' in out
  for action in ('stop', 'delete', 'logs'):
    out = _run(['launch/tpu_vm.sh', action, '--project=p', '--zone=z', '--name=n', '--dry-run'],
               env)
    assert out.startswith('+ gcloud compute tpus tpu-vm')
  assert 'pkill -TERM -f main.py' in _run(['launch/tpu_vm.sh', 'stop', '--project=p',
                                          '--zone=z', '--name=n', '--dry-run'], env)


@pytest.mark.slow
def test_gpu_host_runs_one_process_on_the_chosen_gpus(stubs):
  env, log, _ = stubs
  _run(['launch/gpu_host.sh', '--config=configs/carla.py', '--workdir=/data/runs/a',
        '--gpus=0,1', '--', '--config.batch_size=64'], env)
  [call] = log.read_text().splitlines()
  assert call == 'fake-python main.py --config=configs/carla.py --workdir=/data/runs/a ' \
                 '--config.batch_size=64'
  out = _run(['launch/gpu_host.sh', '--config=c.py', '--workdir=w', '--gpus=0,1', '--setup',
              '--dry-run'], env)
  assert "jax[cuda12]==0.10.2" in out and 'CUDA_VISIBLE_DEVICES=0,1' in out


@pytest.mark.slow
def test_slurm_submits_a_requeueable_job_with_one_task_per_node(stubs):
  env, log, _ = stubs
  _run(['launch/slurm.sh', '--nodes=4', '--gpus_per_node=8', '--partition=gpu',
        '--config=configs/carla.py', '--workdir=/shared/runs/a', '--', '--config.seed=3'], env)
  [mkdir, sbatch] = log.read_text().splitlines()
  assert mkdir == 'mkdir -p /shared/runs/a'
  for flag in ('--nodes=4', '--ntasks-per-node=1', '--gpus-per-node=8', '--requeue',
               '--signal=B:USR1@180', '--partition=gpu'):
    assert flag in sbatch
  assert sbatch.endswith('launch/slurm.sbatch --config=configs/carla.py '
                         '--workdir=/shared/runs/a --config.seed=3')


@pytest.mark.slow
def test_slurm_batch_script_checkpoints_and_requeues_on_usr1(stubs):
  env, log, _ = stubs
  proc = subprocess.Popen(['bash', 'launch/slurm.sbatch', '--config=configs/carla.py',
                           '--workdir=/shared/runs/a'], cwd=REPO,
                          env=env | {'SLURM_JOB_ID': '4242'}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 20
  while 'srun' not in log.read_text() and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGUSR1)
  out, _ = proc.communicate(timeout=30)
  assert proc.returncode == 0, out
  calls = log.read_text().splitlines()
  assert calls[0] == ('srun --kill-on-bad-exit=1 --cpu-bind=none fake-python main.py '
                      '--config=configs/carla.py --workdir=/shared/runs/a')
  assert 'srun got TERM' in calls and 'scontrol requeue 4242' in calls
  assert calls.index('srun got TERM') < calls.index('scontrol requeue 4242')
