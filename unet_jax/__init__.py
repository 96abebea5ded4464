"""unet_jax: U-Net semantic segmentation of driving scenes in JAX/Flax."""
