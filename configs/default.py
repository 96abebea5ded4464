"""Shared defaults of every config: `get_config()` and `lab_model()` of unet_jax/defaults.py.

Not run directly: `carla.py`, `synthetic.py` and the others start from
`get_config()` and change what their recipe needs. The fields and their
defaults live in the library (unet_jax/defaults.py), which reads old workdirs
with them; this module is the configs' conventional entry to them.
"""

from unet_jax.defaults import get_config, lab_model  # noqa: F401  (re-exported)

__all__ = ['get_config', 'lab_model']
