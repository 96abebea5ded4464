"""Runs a Python script as if TensorFlow were not installed: `python without_tensorflow.py SCRIPT ARGS`.

TensorFlow is hidden from the import system (`import tensorflow` raises
ModuleNotFoundError and `find_spec` finds nothing), as on a host without it;
the script then runs as `__main__`. At exit it says whether TensorFlow was
imported after all, for tests to check.
"""

import atexit
import importlib.machinery
import runpy
import sys


class _PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):

  @classmethod
  def find_spec(cls, name, path=None, target=None):
    if name.split('.')[0] == 'tensorflow':
      return None
    return super().find_spec(name, path, target)


def main() -> None:
  sys.meta_path[:] = [_PathFinderWithoutTensorFlow if f is importlib.machinery.PathFinder else f
                      for f in sys.meta_path]
  atexit.register(lambda: print(f'tensorflow imported: {"tensorflow" in sys.modules}',
                                file=sys.stderr))
  sys.argv = sys.argv[1:]
  runpy.run_path(sys.argv[0], run_name='__main__')


if __name__ == '__main__':
  main()
