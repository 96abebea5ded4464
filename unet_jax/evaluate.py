"""`--mode=eval`: score a checkpoint on a split or on any folder in the lab layout.

Writes metrics.json, per_class.csv, confusion.csv, report.md and confusion.png
to `<workdir>/eval/<checkpoint>-step<N>-<data>/` (or `--output_dir`).
"""

import jax
import ml_collections
from absl import logging
from etils import epath

from unet_jax import eval_loop, parallel, reports, restore
from unet_jax.data import loading, reading


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *,
                        checkpoint: str = 'latest', split: str = 'validation',
                        data_dir: str = '', output_dir: str = '') -> dict[str, float]:
  """Evaluates a checkpoint; returns the summary and writes the report files."""
  state, step = restore.restore_state(config, workdir, checkpoint)
  shard = (jax.process_index(), jax.process_count())
  if data_dir:
    data = loading.load_shard(
        reading.list_pairs(data_dir, reading.FolderFormat.from_config(config.data)),
        config.data, *shard)
    source = epath.Path(data_dir).name or 'folder'
  else:
    root = loading.resolve_data_dir(config.data, workdir)
    data = loading.load_split(root, split, config.data, *shard)
    source = split
  mesh = parallel.create_mesh()
  state = jax.device_put(state, parallel.replicated(mesh))
  summary, cm = eval_loop.evaluate(eval_loop.make_eval_fn(config, mesh), state, data, config,
                               parallel.batch_sharding(mesh))
  scales = [float(s) for s in config.eval_input_scales]
  tta = ('-hflip' if config.eval_hflip else '') + (
      '-scales' + '+'.join(f'{s:g}' for s in scales) if scales else '')
  out = epath.Path(output_dir or
                   epath.Path(workdir) / 'eval' / f'{checkpoint}-step{step}-{source}{tta}')
  header = {'checkpoint': checkpoint, 'step': step, 'data': data_dir or split,
            'hflip': bool(config.eval_hflip),
            'input_scales': scales or [float(config.model.input_scale)],
            'frames': data.num_global}
  if jax.process_index() == 0:
    reports.write_eval_report(out, cm, config.data.class_names, header)
  rows = reports.per_class_rows(cm, config.data.class_names)
  logging.info('Evaluation of %s (step %d) on %s, %d frames:\n%s', checkpoint, step,
               header['data'], data.num_global, reports.markdown_table(summary, rows))
  logging.info('Report written to %s', out)
  return summary
