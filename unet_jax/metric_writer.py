"""TensorBoard event files without TensorFlow: scalars and images of a training run.

The run's metrics go to `workdir/events.out.tfevents.*`, in the format
`tf.summary` writes (scalar and image plugin tensors), built from
TensorBoard's own protos, so training needs no TensorFlow. Writes are
synchronous (a few records per log step): a full disk is an error of the
step that wrote, not of a background thread. Processes other than 0 only log.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Mapping

import numpy as np
from absl import logging
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.record_writer import RecordWriter


def _scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)],
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto())
  metadata = scalar_metadata.create_summary_metadata(display_name=tag, description='')
  return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buf, 'PNG')
  return buf.getvalue()


def _image_value(tag: str, images: np.ndarray) -> summary_pb2.Summary.Value:
  """(N, H, W, C) uint8 images (C in 1, 3, 4) as one image summary: width, height, PNGs."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
    raise ValueError(f'{tag}: images must be (N, H, W, 1|3|4), got {images.shape}')
  if images.dtype != np.uint8:
    images = np.clip(np.round(images * 255 if images.dtype.kind == 'f' else images),
                     0, 255).astype(np.uint8)
  content = [str(images.shape[2]).encode(), str(images.shape[1]).encode()]
  content += [_png(image) for image in images]
  shape = tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(content))])
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=content,
                                  tensor_shape=shape)
  metadata = image_metadata.create_summary_metadata(display_name=tag, description='')
  return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)


class MetricWriter:
  """write_scalars / write_images / flush / close, as clu's metric writers."""

  def __init__(self, logdir: str | os.PathLike, just_logging: bool = False):
    self._file = self._records = None
    if not just_logging:
      name = f'events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}'
      self._file = open(os.path.join(logdir, name), 'wb')
      self._records = RecordWriter(self._file)
      self._write(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  def _write(self, event: event_pb2.Event) -> None:
    self._records.write(event.SerializeToString())

  def _write_summary(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
    if self._records is not None:
      self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                  summary=summary_pb2.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    logging.debug('[%d] %s', step, ', '.join(f'{k}={v:.6g}' for k, v in scalars.items()))
    self._write_summary(step, [_scalar_value(k, v) for k, v in scalars.items()])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self._write_summary(step, [_image_value(k, v) for k, v in images.items()])

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = self._records = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, exc_type, *_) -> None:
    try:
      self.close()
    except OSError:
      if exc_type is None:  # else the error that ended the block is the one to report
        raise
