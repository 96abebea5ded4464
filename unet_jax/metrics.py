"""Segmentation metrics from a confusion matrix accumulated over a split.

The device side (`confusion_matrix`) counts pixels per (true, predicted) class
for one batch, skipping padded examples and ignored pixels; the host side
(`summarize`) turns the summed matrix into scores. Summing matrices over
batches counts every pixel of the split exactly once, whatever the batching.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def valid_pixels(labels: jax.Array, valid: jax.Array, num_classes: int,
                 ignore_label: int) -> jax.Array:
  """Bool mask (N,H,W): pixel of a real (not padded) example with a usable label."""
  mask = valid[:, None, None] & (labels >= 0) & (labels < num_classes)
  if ignore_label >= 0:
    mask &= labels != ignore_label
  return mask


def confusion_matrix(labels: jax.Array, predictions: jax.Array, mask: jax.Array,
                     num_classes: int) -> jax.Array:
  """int32 (C, C) counts, rows = true class, columns = predicted class."""
  true_1h = jax.nn.one_hot(labels.reshape(-1), num_classes, dtype=jnp.float32)
  pred_1h = jax.nn.one_hot(predictions.reshape(-1), num_classes, dtype=jnp.float32)
  true_1h = true_1h * mask.reshape(-1, 1)
  # A matmul of one-hots; float32 counts are exact below 2**24 pixels a batch.
  cm = jnp.einsum('nc,nd->cd', true_1h, pred_1h, precision=jax.lax.Precision.HIGHEST)
  return jnp.round(cm).astype(jnp.int32)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
  """IoU of each class; NaN for classes absent from both truth and prediction."""
  cm = np.asarray(cm, np.float64)
  tp = np.diag(cm)
  union = cm.sum(0) + cm.sum(1) - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(union > 0, tp / union, np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
  """Dice (F1) of each class; NaN for classes absent from truth and prediction."""
  cm = np.asarray(cm, np.float64)
  tp = np.diag(cm)
  denom = cm.sum(0) + cm.sum(1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(denom > 0, 2 * tp / denom, np.nan)


def summarize(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
  """Pixel accuracy, mean IoU over present classes, and per-class IoU.

  A class counts as present when it occurs in the truth or the prediction;
  classes absent from both are left out of the means (never scored 0 or 1).
  `mean_iou_truth` averages only the classes in the truth: a class that occurs
  only in the prediction counts 0 in `mean_iou` (a few stray pixels of it move
  that mean by 1/classes) and nothing here, so the two show such swings apart.
  Frequency-weighted IoU weights each class's IoU by its share of true pixels.
  """
  cm = np.asarray(cm, np.int64)
  total = cm.sum()
  ious = iou_per_class(cm)
  dice = dice_per_class(cm)
  present = ~np.isnan(ious)
  in_truth = cm.sum(1) > 0
  freq = cm.sum(1) / total if total else np.zeros(len(cm))
  out = {
      'pixel_accuracy': float(np.trace(cm) / total) if total else float('nan'),
      'mean_iou': float(ious[present].mean()) if present.any() else float('nan'),
      'mean_iou_truth': float(ious[in_truth].mean()) if in_truth.any() else float('nan'),
      'mean_dice': float(dice[present].mean()) if present.any() else float('nan'),
      'fw_iou': float(np.nansum(freq * ious)) if total else float('nan'),
      'num_present_classes': float(present.sum()),
  }
  names = class_names or [str(i) for i in range(len(cm))]
  for name, iou in zip(names, ious):
    out[f'iou/{name}'] = float(iou)
  return out
