"""`tfds build` for this package's builders, through TFDS's own build command.

The `tfds` launcher of tensorflow-datasets 4.9.10 imports apache_beam at
start-up (for its convert_format command) and fails without it. This runs the
same build command with the same flags, the builders already imported:
  python -m unet_jax.data.build carla_lab \
      --manual_dir=../shared/data/carla_lab/320x240 --data_dir=/tmp/tfds
With apache-beam installed, `tfds build carla_lab --imports=unet_jax.data.tfds_builders
--manual_dir=... --data_dir=...` does the same.
"""

import sys

import simple_parsing
from tensorflow_datasets.scripts.cli import build as tfds_build

from unet_jax.data import tfds_builders

_REGISTERED = tfds_builders  # importing it registers the builders with TFDS


def main(argv: list[str]) -> None:
  simple_parsing.parse(tfds_build.Args, args=argv).execute()


if __name__ == '__main__':
  main(sys.argv[1:])
