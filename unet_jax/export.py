"""`--mode=export`: a self-contained serialized inference function (jax.export / StableHLO).

The file holds the network and its trained weights; loading it needs only
`jax`, not unet_jax:

    import jax, numpy as np
    fn = jax.export.deserialize(open('model.jax_exported', 'rb').read())
    classes, logits = fn.call(images)  # images: uint8 (N, H, W, 3), any N

`export.json` beside it records the input size, class names and palette.
"""

import json

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from etils import epath

from unet_jax import restore, visualize

EXPORTED = 'model.jax_exported'


def export_checkpoint(config: ml_collections.ConfigDict, workdir: str, output_dir: str = '',
                      *, checkpoint: str = 'latest',
                      platforms: tuple[str, ...] = ('cpu',)) -> epath.Path:
  """Serializes `images -> (int32 classes, float32 logits)` with weights baked in."""
  state, step = restore.restore_state(config, workdir, checkpoint)

  def segment(images):
    logits = state.apply_fn(state.variables, images, train=False)
    return jnp.argmax(logits, -1).astype(jnp.int32), logits

  h, w = config.data.image_size
  batch, = jax.export.symbolic_shape('batch')
  exported = jax.export.export(jax.jit(segment), platforms=platforms)(
      jax.ShapeDtypeStruct((batch, h, w, 3), jnp.uint8))
  out = epath.Path(output_dir or epath.Path(workdir) / 'export')
  out.mkdir(parents=True, exist_ok=True)
  (out / EXPORTED).write_bytes(exported.serialize())
  n = config.data.num_classes
  (out / 'export.json').write_text(json.dumps({
      'input': {'shape': ['batch', h, w, 3], 'dtype': 'uint8', 'range': '0..255 RGB'},
      'outputs': ['classes int32 (batch, H, W)', 'logits float32 (batch, H, W, classes)'],
      'class_names': list(config.data.class_names), 'palette': visualize.palette(n).tolist(),
      'checkpoint': checkpoint, 'step': step, 'platforms': list(platforms),
  }, indent=2))
  logging.info('Exported %s checkpoint (step %d) for %s to %s', checkpoint, step,
               ', '.join(platforms), out / EXPORTED)
  return out / EXPORTED
