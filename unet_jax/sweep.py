"""Run a sweep: every variant x seed of a sweep file, each in its own workdir.

  python -m unet_jax.sweep --sweep=configs/sweeps/carla_ablation.py --workdir=DIR [--parallel=2]

A sweep file's `get_sweep()` returns a dict: `config` (a config file),
`overrides` (for every run), `seeds`, and `variants` (name -> overrides).
Run `v` with seed `s` trains in `DIR/v/seed_s` via main.py, logging to
`DIR/v/seed_s/log.txt`. Finished runs (with eval_results.json) are skipped,
interrupted ones resume from their checkpoints, and a failing run is reported
without stopping the others. `--print_commands` prints the commands instead
of running them; `--launcher='launch/slurm.sh --nodes=2'` runs (or, with
--print_commands, prints) each through a launch script instead of main.py.
At the end the results are aggregated (see unet_jax/sweep_results.py).
"""

import concurrent.futures
import dataclasses
import importlib.util
import shlex
import subprocess
import sys
import time
from typing import Any

from absl import app, flags, logging
from etils import epath

from unet_jax import reports, sweep_results
from unet_jax.errors import ConfigError

REPO = epath.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Run:
  variant: str
  seed: int
  workdir: epath.Path
  command: tuple[str, ...]


def load_sweep(path: str) -> dict[str, Any]:
  spec = importlib.util.spec_from_file_location('sweep_file', path)
  if spec is None or not epath.Path(path).exists():
    raise ConfigError(f'--sweep={path}: no such file')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  sweep = module.get_sweep()
  missing = {'config', 'seeds', 'variants'} - set(sweep)
  if missing:
    raise ConfigError(f'{path}: get_sweep() lacks {sorted(missing)}')
  return sweep


def plan(sweep: dict[str, Any], workdir: str, launcher: str = '') -> list[Run]:
  """One Run per variant x seed, in a stable order.

  Without `launcher` each run is `python main.py ...`; with one (e.g.
  'launch/slurm.sh --nodes=2') it is `LAUNCHER --config=C --workdir=W --
  --config.k=v ...`, the calling convention of the scripts in launch/.
  """
  runs = []
  for variant, overrides in sweep['variants'].items():
    for seed in sweep['seeds']:
      run_dir = epath.Path(workdir) / variant / f'seed_{seed}'
      args = {**sweep.get('overrides', {}), **overrides, 'seed': seed}
      config_args = tuple(f'--config.{k}={v}' for k, v in args.items())
      where = (f'--config={sweep["config"]}', f'--workdir={run_dir}')
      if launcher:
        command = (*shlex.split(launcher), *where, '--', *config_args)
      else:
        command = (sys.executable, str(REPO / 'main.py'), *where, *config_args)
      runs.append(Run(variant, seed, run_dir, command))
  return runs


def is_finished(run: Run) -> bool:
  return (run.workdir / reports.EVAL_RESULTS).exists()


def execute(run: Run) -> int:
  run.workdir.mkdir(parents=True, exist_ok=True)
  with (run.workdir / 'log.txt').open('a') as log:
    return subprocess.run(run.command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode


def run_sweep(sweep: dict[str, Any], workdir: str, parallel: int = 1,
              launcher: str = '') -> dict[str, int]:
  """Runs (or launches) what is not finished; returns the exit code of each."""
  runs = plan(sweep, workdir, launcher)
  todo = [r for r in runs if not is_finished(r)]
  logging.info('Sweep: %d runs, %d finished, %d to run, %d at a time', len(runs),
               len(runs) - len(todo), len(todo), parallel)
  codes: dict[str, int] = {}
  start = time.time()
  with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
    futures = {pool.submit(execute, r): r for r in todo}
    for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
      run = futures[future]
      codes[f'{run.variant}/seed_{run.seed}'] = code = future.result()
      elapsed = time.time() - start
      logging.info('[%d/%d] %s seed %d %s (%.0f s elapsed, ETA %.0f s)', done, len(todo),
                   run.variant, run.seed, 'finished' if code == 0 else
                   f'FAILED (exit {code}, see {run.workdir / "log.txt"})', elapsed,
                   elapsed / done * (len(todo) - done))
  failed = sorted(k for k, c in codes.items() if c)
  if failed:
    logging.error('%d run(s) failed: %s', len(failed), ', '.join(failed))
  return codes


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line of `python -m unet_jax.sweep` (defined only when run so)."""
  flags.DEFINE_string('sweep', None, 'Sweep file (configs/sweeps/*.py).')
  flags.DEFINE_string('workdir', None, 'Root folder of the sweep.')
  flags.DEFINE_integer('parallel', 1, 'Runs at a time.')
  flags.DEFINE_bool('print_commands', False, 'Print the commands of unfinished runs, run none.')
  flags.DEFINE_string('launcher', '', "Start runs through a launch script, e.g. "
                      "'launch/slurm.sh --nodes=2' or 'launch/gpu_host.sh --gpus=0' "
                      "(submitting scripts return at once: rerun the sweep to aggregate).")
  flags.mark_flags_as_required(['sweep', 'workdir'])


def main(argv):
  del argv
  sweep = load_sweep(FLAGS.sweep)
  if FLAGS.print_commands:
    for run in plan(sweep, FLAGS.workdir, FLAGS.launcher):
      if not is_finished(run):
        print(shlex.join(run.command))
    return 0
  codes = run_sweep(sweep, FLAGS.workdir, FLAGS.parallel, FLAGS.launcher)
  table = sweep_results.aggregate(FLAGS.workdir, sweep)
  print(sweep_results.markdown(table))
  return 1 if any(codes.values()) else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
