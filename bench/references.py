"""The lab U-Net in Keras and in PyTorch, for speed comparisons only.

Same layers as `unet_jax.models.UNet` with the lab preset: five encoder levels
of two 3x3 ReLU convs (32..512 channels, dropout 0.3 in the two deepest),
2x2 max-pool between them, four decoder levels of a 3x3 stride-2 transposed
conv, concatenation with the skip and two 3x3 ReLU convs, then a 3x3 ReLU conv
and a 1x1 conv to the class logits: 8,640,471 parameters at 23 classes.
"""

WIDTHS = (32, 64, 128, 256, 512)
DROPOUT = (0.0, 0.0, 0.0, 0.3, 0.3)


def keras_unet(height: int, width: int, num_classes: int = 23):
  """The lab model as a Keras functional model (float32 logits)."""
  import keras
  from keras import layers

  def block(x, features, dropout):
    for _ in range(2):
      x = layers.Conv2D(features, 3, padding='same', activation='relu',
                        kernel_initializer='he_normal')(x)
    return layers.Dropout(dropout)(x) if dropout else x

  inputs = keras.Input((height, width, 3))
  x, skips = inputs, []
  for level, features in enumerate(WIDTHS):
    x = block(x, features, DROPOUT[level])
    if level < len(WIDTHS) - 1:
      skips.append(x)
      x = layers.MaxPooling2D(2)(x)
  for level in reversed(range(len(WIDTHS) - 1)):
    x = layers.Conv2DTranspose(WIDTHS[level], 3, strides=2, padding='same')(x)
    x = layers.Concatenate()([x, skips[level]])
    x = block(x, WIDTHS[level], 0.0)
  x = layers.Conv2D(WIDTHS[0], 3, padding='same', activation='relu',
                    kernel_initializer='he_normal')(x)
  return keras.Model(inputs, layers.Conv2D(num_classes, 1)(x))


def torch_unet(num_classes: int = 23):
  """The lab model as a PyTorch module (NCHW; run it channels-last)."""
  import torch
  from torch import nn

  def block(cin, features, dropout):
    mods = [nn.Conv2d(cin, features, 3, padding=1), nn.ReLU(),
            nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*mods, *([nn.Dropout(dropout)] if dropout else []))

  class UNet(nn.Module):

    def __init__(self):
      super().__init__()
      cins = (3,) + WIDTHS[:-1]
      self.down = nn.ModuleList(block(c, f, d) for c, f, d in zip(cins, WIDTHS, DROPOUT))
      # Keras 'same' for a stride-2 3x3 transposed conv: crop one row/column
      # at the top-left, i.e. padding=1 and output_padding=1.
      self.up = nn.ModuleList(
          nn.ConvTranspose2d(WIDTHS[i + 1], WIDTHS[i], 3, stride=2, padding=1, output_padding=1)
          for i in range(len(WIDTHS) - 1))
      self.up_blocks = nn.ModuleList(block(2 * WIDTHS[i], WIDTHS[i], 0.0)
                                     for i in range(len(WIDTHS) - 1))
      self.head = nn.Sequential(nn.Conv2d(WIDTHS[0], WIDTHS[0], 3, padding=1), nn.ReLU(),
                                nn.Conv2d(WIDTHS[0], num_classes, 1))

    def forward(self, x):
      skips = []
      for level, down in enumerate(self.down):
        x = down(x)
        if level < len(self.down) - 1:
          skips.append(x)
          x = torch.nn.functional.max_pool2d(x, 2)
      for level in reversed(range(len(self.up))):
        x = self.up_blocks[level](torch.cat([self.up[level](x), skips[level]], 1))
      return self.head(x)

  return UNet()
