"""A training run's workdir: its exclusive lock and its small files, written whole.

A training run holds `workdir/.lock` (an `flock`, so the kernel releases it
however the process ends: a `kill -9` leaves no lock behind, only the file,
which the next run reuses). A second run on the same workdir is refused at
once with the holder's host and pid. Evaluation, prediction and export only
read complete checkpoints and take no lock, so they can run while training
writes. Cloud workdirs (gs://) have no flock: they run unlocked, with a warning.

Small files (`config.json`, `best.json`, `eval_results.json`) are written to a
temporary name and renamed over the old one, so a reader (or a crash) sees the
old file or the new one, never a part of one.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from absl import logging
from etils import epath

from unet_jax.errors import WorkdirError

LOCK = '.lock'
CONFIG = 'config.json'

# Errors a user fixes on their machine (disk, quota, permissions), not in the code.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def storage_error(e: BaseException) -> OSError | None:
  """The disk-full / permission OSError inside `e` (its cause chain), if any."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
      return e
    text = str(e)
    if ('No space left on device' in text or 'Disk quota exceeded' in text
        or 'RESOURCE_EXHAUSTED: Error writing' in text):
      return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if 'Permission denied' in text or 'Read-only file system' in text:
      return OSError(errno.EACCES, text.splitlines()[0][:300])
    e = e.__cause__ or e.__context__
  return None


def write_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes `text` to `path` whole or not at all (temporary file + rename)."""
  path = epath.Path(path)
  if '://' in str(path):  # object stores replace an object atomically already
    path.write_text(text)
    return
  tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
  try:
    with open(tmp, 'w') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def write_json(path: str | os.PathLike, value: Any) -> None:
  write_atomic(path, json.dumps(value, indent=2))


@contextlib.contextmanager
def exclusive(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock for the body; WorkdirError if another run holds it."""
  if '://' in workdir:
    logging.warning('%s is not a local folder: no lock against a second run on it.', workdir)
    yield
    return
  path = os.path.join(workdir, LOCK)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise WorkdirError(f'cannot write to --workdir={workdir}: {e}') from e
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors='replace').strip() or 'another process'
      raise WorkdirError(
          f'--workdir={workdir} is in use by another training run ({holder}). Wait for it '
          f'to finish or stop it (SIGTERM checkpoints and exits), or use another --workdir. '
          f'--mode=eval/predict/export can read it meanwhile.') from None
    previous = os.pread(fd, 200, 0).decode(errors='replace').strip()
    if previous:
      logging.info('%s names %s, which ended without releasing it (killed?); taking over.',
                   path, previous)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'host {socket.gethostname()}, pid {os.getpid()}, since '
                  f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n'.encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # an empty file: released cleanly
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def record_config(workdir: str, config_json: str) -> None:
  """Writes the run's config.json, logging which fields changed since the last run."""
  path = epath.Path(workdir) / CONFIG
  if path.exists():
    try:
      old = _flatten(json.loads(path.read_text()))
    except ValueError:
      old = {}
    new = _flatten(json.loads(config_json))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
      logging.warning('The config differs from the one this workdir last ran with, in: %s. '
                      'Continuing with the new one (config.json is updated).',
                      ', '.join(changed[:20]) + (' ...' if len(changed) > 20 else ''))
  write_atomic(path, config_json)


def _flatten(tree: dict, prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat
