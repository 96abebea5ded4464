"""Shared fixtures: tiny configs and tiny generated datasets."""

import os
import pathlib

import ml_collections
import pytest

from configs import tiny

REPO = pathlib.Path(__file__).resolve().parents[1]

# Many tests compile the same tiny programs, in this process and in children:
# a persistent compilation cache (inherited through the environment) saves minutes.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO / '.pytest_cache' / 'jax'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
# XLA:CPU at optimisation level 1 compiles ~8x faster (a random-normal initialiser
# takes 2 s at the default level): most test time is compilation, not running.
# Runs compared with each other in a test all use the same level.
TEST_XLA_FLAGS = '--xla_backend_optimization_level=1'
os.environ['XLA_FLAGS'] = f"{TEST_XLA_FLAGS} {os.environ.get('XLA_FLAGS', '')}".strip()
# Prepared TFDS datasets of tests (and their children) stay out of ~/tensorflow_datasets.
os.environ.setdefault('TFDS_DATA_DIR', str(REPO / '.pytest_cache' / 'tfds'))
SHARED_CARLA = REPO.parent / 'shared' / 'data' / 'carla_lab'


def tiny_config() -> ml_collections.ConfigDict:
  """`configs/tiny.py`: a seconds-long run of a 2-level U-Net on 32x48 frames."""
  return tiny.get_config()


@pytest.fixture
def config() -> ml_collections.ConfigDict:
  return tiny_config()


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """A generated dataset in the lab layout, shared by the tests that only read it."""
  from unet_jax.data import synthetic
  s = tiny_config().data.synthetic
  root = tmp_path_factory.mktemp('data') / 'synthetic'
  synthetic.generate(root, num_clips=s.num_clips, frames_per_clip=s.frames_per_clip,
                     height=s.height, width=s.width, seed=s.seed)
  return root


@pytest.fixture(scope='session')
def trained_tiny_workdir(tmp_path_factory) -> pathlib.Path:
  """A finished run of `configs/tiny.py` (checkpoints 2 and 4), trained once per session.

  Read-only: tests that change a trained workdir take `trained_copy`.
  """
  from unet_jax import train
  workdir = tmp_path_factory.mktemp('trained') / 'run'
  train.train_and_evaluate(tiny_config(), str(workdir))
  return workdir


@pytest.fixture
def trained_copy(trained_tiny_workdir, tmp_path) -> pathlib.Path:
  """`tmp_path/run`: a copy of the session's finished tiny run, as if trained here."""
  import shutil
  return pathlib.Path(shutil.copytree(trained_tiny_workdir, tmp_path / 'run', symlinks=True))


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child Python that imports this repo."""
  env = dict(os.environ)
  env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
  if 'XLA_FLAGS' in extra:
    extra = {**extra, 'XLA_FLAGS': f"{TEST_XLA_FLAGS} {extra['XLA_FLAGS']}"}
  env.update(extra)
  return env


def restore_checkpoint(workdir: pathlib.Path, step: int) -> dict:
  """The train state saved at `step` in `workdir`, as a plain tree of numpy arrays.

  As numpy, so that a checkpoint written by a run on 2 CPU devices restores
  in this 1-device test process.
  """
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  path = workdir / 'checkpoints' / str(step) / 'state'
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(path, restore_args=as_numpy)


def assert_trees_bitwise_equal(a, b) -> None:
  import jax
  import numpy as np
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
