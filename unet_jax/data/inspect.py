"""Look at a dataset before training on it: splits, sizes, classes, a picture.

  python -m unet_jax.data.inspect --config=configs/own_data.py \
      --config.data.data_dir=/data/camvid --config.data.layout=split_folders ... \
      --output_dir=/tmp/inspect

Reads every pair the way the TFDS builder does (the same layouts, encodings
and checks: a bad file is named and nothing is written) and reports, per
split: frames, image sizes, the share of pixels of each class, the classes
absent from it and the share of ignored pixels. Writes `inspect.json`,
`inspect.md` and `frames.png` (a few frames of each split with their masks)
to --output_dir, and prints the markdown.
"""

import collections
import concurrent.futures
import json
import os
import sys
from typing import Any

import ml_collections
import numpy as np
from etils import epath
from PIL import Image

from unet_jax import visualize
from unet_jax.data import layouts, loading, reading
from unet_jax.errors import UserError

FRAMES_PER_SPLIT = 3


def inspect_splits(data: ml_collections.ConfigDict,
                   root: epath.Path) -> tuple[dict[str, Any], dict[str, list]]:
  """(statistics per split, a few (image, mask) examples per split) of `config.data`."""
  fmt = reading.FolderFormat.from_config(data)
  splits = layouts.split_pairs(
      root, layouts.Layout.from_config(data), fmt, split_file=data.split_file,
      val_fraction=data.val_fraction, test_fraction=data.test_fraction,
      split_seed=data.split_seed, clip_gap=data.clip_gap, skip_unmatched=data.skip_bad_pairs)
  n, names = data.num_classes, tuple(data.class_names)
  stats, examples = {}, {}
  for split, members in splits.items():
    pairs = [p for p, _ in members]
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
      loaded = list(pool.map(lambda p: reading.read_pair(p, fmt), pairs))
    counts = np.zeros(n + 1, np.int64)  # the last counts ignored pixels
    sizes = collections.Counter()
    for image, mask in loaded:
      sizes[f'{image.shape[1]}x{image.shape[0]}'] += 1
      known = mask < n
      counts[:n] += np.bincount(mask[known].ravel(), minlength=n)[:n]
      counts[n] += int((~known).sum())
    total = max(int(counts.sum()), 1)
    stats[split] = {
        'frames': len(pairs),
        'clips': len({c for _, c in members}),
        'image_sizes': dict(sizes.most_common()),
        'class_share': {names[i]: counts[i] / total for i in range(n)},
        'absent_classes': [names[i] for i in range(n) if counts[i] == 0],
        'ignored_share': counts[n] / total,
    }
    picks = np.linspace(0, len(loaded) - 1, min(FRAMES_PER_SPLIT, len(loaded)), dtype=int)
    examples[split] = [(pairs[i].name, *loaded[i]) for i in picks]
  return stats, examples


def markdown(stats: dict[str, Any], class_names: tuple[str, ...], source: str) -> str:
  splits = list(stats)
  lines = [f'# Dataset: {source}', '', '| | ' + ' | '.join(splits) + ' |',
           '|---|' + '---:|' * len(splits)]
  for key, label in (('frames', 'frames'), ('clips', 'clips (or frames, when given split)')):
    lines.append(f'| {label} | ' + ' | '.join(str(stats[s][key]) for s in splits) + ' |')
  lines.append('| image sizes (WxH: frames) | ' + ' | '.join(
      ', '.join(f'{k}: {v}' for k, v in stats[s]['image_sizes'].items()) for s in splits) + ' |')
  lines.append('| ignored pixels | ' + ' | '.join(
      f"{100 * stats[s]['ignored_share']:.2f} %" for s in splits) + ' |')
  lines += ['', '## Share of pixels per class', '',
            '| class | ' + ' | '.join(splits) + ' |', '|---|' + '---:|' * len(splits)]
  for i, name in enumerate(class_names):
    shares = [stats[s]['class_share'][name] for s in splits]
    cells = ['absent' if v == 0 else f'{100 * v:.3f} %' for v in shares]
    lines.append(f'| {i} {name} | ' + ' | '.join(cells) + ' |')
  lines += ['', '## Classes absent from a split', '']
  lines += [f"- {s}: {', '.join(stats[s]['absent_classes']) or 'none'}" for s in splits]
  return '\n'.join(lines) + '\n'


def picture(examples: dict[str, list], class_names: tuple[str, ...],
            height: int = 120) -> np.ndarray:
  """`image | mask` panels of each split's example frames, with the split in the title."""
  panels = []
  for split, items in examples.items():
    for name, image, mask in items:
      w = max(1, round(image.shape[1] * height / image.shape[0]))
      small = np.asarray(Image.fromarray(image).resize((w, height), Image.Resampling.BILINEAR))
      small_mask = np.asarray(Image.fromarray(mask).resize((w, height), Image.Resampling.NEAREST))
      tile = visualize.panel(small, None, class_names, truth=small_mask)
      panels.append(visualize.titled(tile, f'{split}: {name}'))
  return visualize.stack(panels)


def run(config: ml_collections.ConfigDict, output_dir: str) -> dict[str, Any]:
  """Inspects `config.data`, writes the report files to `output_dir`, prints the markdown."""
  config = reading.resolve_classes(config)
  root = loading.resolve_data_dir(config.data, output_dir)
  stats, examples = inspect_splits(config.data, root)  # everything checked before writing
  text = markdown(stats, tuple(config.data.class_names), str(root))
  out = epath.Path(output_dir)
  out.mkdir(parents=True, exist_ok=True)
  (out / 'inspect.json').write_text(json.dumps({'data_dir': str(root), 'splits': stats},
                                               indent=2, default=float))
  (out / 'inspect.md').write_text(text + '\n![frames](frames.png)\n')
  Image.fromarray(picture(examples, tuple(config.data.class_names))).save(out / 'frames.png')
  print(text)
  print(f'Written: {out / "inspect.md"}, inspect.json, frames.png')
  return stats


def main() -> None:
  from absl import app, flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
  flags.DEFINE_string('output_dir', None, 'Where the report goes.')
  flags.mark_flags_as_required(['config', 'output_dir'])

  def _main(argv):
    del argv
    try:
      run(flags.FLAGS.config, flags.FLAGS.output_dir)
    except UserError as e:
      sys.exit(f'error: {e}')

  app.run(_main)


if __name__ == '__main__':
  main()
