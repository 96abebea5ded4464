"""Errors a user can fix. `main.py` prints them as one message, exit status 1.

Each message names the option or file at fault and what is wrong with it;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the config, the data or the workdir."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work (names the `config.` field)."""


class DataError(UserError, ValueError):
  """A problem with files on disk (names the file or folder)."""


class CheckpointError(UserError, ValueError):
  """The workdir's checkpoints cannot be used by this run."""


class WorkdirError(UserError, OSError):
  """The workdir cannot be created or written."""


class DivergedError(UserError, FloatingPointError):
  """The loss or gradient became NaN or infinite."""
