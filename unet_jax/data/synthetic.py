"""Procedural driving scenes in the lab layout: the embedded default dataset.

Scenes are drawn back to front (sky, buildings or walls, vegetation, terrain,
sidewalks, road, lane markings, guard rails, fences, poles with signs,
vehicles, pedestrians) with CARLA class indices, per-clip lighting and
per-pixel noise. A clip is a short drive: the camera moves forward frame by
frame, so neighbouring frames are near duplicates, as in the real data.
Everything is a pure function of the seed. Files are written in exactly the
lab's encoding so the default run goes through the real loading code.
"""

import json
import os

import numpy as np
from absl import logging
from etils import epath

from unet_jax.classes import CARLA
from unet_jax.data import reading
from unet_jax.errors import DataError

MARKER = 'synthetic_complete.json'


class _Canvas:
  """Image and label buffers plus pixel-coordinate grids, painted in order."""

  def __init__(self, h: int, w: int, rng: np.random.Generator):
    self.h, self.w, self.rng = h, w, rng
    self.y, self.x = np.mgrid[0:h, 0:w].astype(np.float32)
    self.y /= h
    self.x /= w
    self.image = np.zeros((h, w, 3), np.float32)
    self.label = np.zeros((h, w), np.uint8)

  def paint(self, region: np.ndarray, cls: str, colour, texture: float = 0.0) -> None:
    colour = np.asarray(colour, np.float32)
    if texture:
      shade = 1.0 + texture * np.sin(self.x * 97.0 + self.y * 41.0) * np.sin(self.y * 71.0)
      self.image[region] = colour * shade[region][:, None]
    else:
      self.image[region] = colour
    self.label[region] = CARLA[cls]


def _jitter(rng: np.random.Generator, colour, amount: float = 18.0) -> np.ndarray:
  return np.clip(np.asarray(colour, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _clip_params(rng: np.random.Generator) -> dict:
  """Everything that stays fixed within a clip (layout, colours, weather)."""
  side = lambda: rng.choice(['buildings', 'trees', 'wall', 'open'], p=[.45, .25, .15, .15])
  return dict(
      horizon=rng.uniform(0.35, 0.55), vp=rng.uniform(0.35, 0.65),
      road_half=rng.uniform(0.45, 0.8), walk=rng.uniform(0.12, 0.3),
      sides=(side(), side()), light=rng.uniform(0.7, 1.2),
      sky=_jitter(rng, (120, 165, 215), 25), road=_jitter(rng, (92, 90, 95), 10),
      walk_colour=_jitter(rng, (150, 140, 140), 12), terrain=_jitter(rng, (115, 120, 70), 15),
      guardrail=rng.random() < 0.35, fence=rng.random() < 0.4,
      blocks=[(rng.uniform(0.1, 0.55), _jitter(rng, (110, 95, 85), 30)) for _ in range(12)],
      trees=[(rng.uniform(-0.1, 1.1), rng.uniform(0.04, 0.1)) for _ in range(6)],
      poles=[rng.uniform(0, 1) for _ in range(rng.integers(1, 4))],
      sign_colour=_jitter(rng, (200, 40, 40), 30),
      vehicles=[(rng.uniform(-0.7, 0.7), rng.uniform(0.1, 1.0), _jitter(rng, (60, 60, 160), 60))
                for _ in range(rng.integers(0, 4))],
      people=[(rng.choice([-1, 1]), rng.uniform(0.15, 1.0), _jitter(rng, (170, 60, 80), 50))
              for _ in range(rng.integers(0, 3))],
      speed=rng.uniform(0.01, 0.03))


def render_frame(params: dict, t: int, h: int, w: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Frame `t` of the clip described by `params`: (uint8 HxWx3, uint8 HxW)."""
  c = _Canvas(h, w, rng)
  p = params
  hz, vp = p['horizon'], p['vp']
  move = t * p['speed']
  below = np.clip((c.y - hz) / (1 - hz), 0, None)  # 0 at horizon, 1 at bottom.
  dx = c.x - vp
  road_edge = p['road_half'] * below
  walk_edge = road_edge + p['walk'] * below

  c.paint(np.ones_like(c.label, bool), 'Sky', p['sky'])
  c.image *= (0.8 + 0.5 * c.y)[..., None]  # brighter towards the horizon.

  # Sides of the street: buildings / trees / walls above a base line.
  for s, sign in enumerate((-1, 1)):
    on_side = (sign * dx) > 0
    base = hz + 0.25 * np.abs(dx)
    kind = p['sides'][s]
    if kind == 'buildings':
      facade = (np.floor((np.abs(dx) + move * 0.5) * 8).astype(int)) % len(p['blocks'])
      tops = np.array([b[0] for b in p['blocks']])[facade]
      region = on_side & (c.y > tops * hz) & (c.y < base)
      colours = np.array([b[1] for b in p['blocks']])[facade]
      c.image[region] = colours[region]
      c.label[region] = CARLA['Building']
      windows = region & (np.sin(c.x * 120) > 0.5) & (np.sin(c.y * 90) > 0.4)
      c.image[windows] *= 0.55
    elif kind == 'wall':
      c.paint(on_side & (c.y > hz - 0.12) & (c.y < base), 'Wall', (150, 150, 165), texture=0.15)
    elif kind == 'trees':
      c.paint(on_side & (c.y > hz - 0.05) & (c.y < base), 'Vegetation', (70, 110, 45), texture=0.3)

  # Free-standing trees on both sides.
  for x0, r in p['trees']:
    cx = (x0 + (x0 - vp) * move) % 1.2 - 0.1
    cy = hz - r * 0.5
    crown = ((c.x - cx) ** 2 + ((c.y - cy) * 0.8) ** 2) < r ** 2
    c.paint(crown, 'Vegetation', (60, 120, 40), texture=0.35)

  ground = c.y >= hz
  c.paint(ground & (np.abs(dx) >= walk_edge), 'Terrain', p['terrain'], texture=0.2)
  c.paint(ground & (np.abs(dx) < walk_edge) & (np.abs(dx) >= road_edge), 'SideWalk',
          p['walk_colour'], texture=0.05)
  c.paint(ground & (np.abs(dx) < road_edge), 'Road', p['road'], texture=0.04)

  # Dashed centre line: dashes move towards the camera with t.
  depth = 1.0 / np.maximum(below, 1e-3)
  dash = np.sin(depth * 1.5 - move * 40) > 0
  c.paint(ground & (np.abs(dx) < 0.012 + 0.02 * below) & dash & (below > 0.03),
          'RoadLine', (235, 235, 225))
  if p['guardrail']:
    rail = ground & (np.abs(np.abs(dx) - road_edge) < 0.01 + 0.01 * below) & (below > 0.05)
    c.paint(rail, 'GuardRail', (175, 175, 185))
  if p['fence']:
    fence = ground & (np.abs(np.abs(dx) - walk_edge - 0.04 * below) < 0.008 + 0.03 * below)
    fence |= (c.y < hz) & (c.y > hz - 0.06) & (np.abs(dx) > 0.35) & (np.sin(c.x * 300) > 0.3)
    c.paint(fence, 'Fence', (120, 80, 60))

  for x_rel in p['poles']:
    along = (x_rel + move * 2) % 1.0  # distance along the street, 0 far, 1 near.
    side = 1 if x_rel > 0.5 else -1
    px = vp + side * (p['road_half'] + p['walk'] * 0.5) * along
    py = hz + (1 - hz) * along
    half = 0.003 + 0.008 * along
    top = py - 0.5 * along - 0.05
    c.paint((np.abs(c.x - px) < half) & (c.y < py) & (c.y > top), 'Pole', (140, 140, 140))
    sign = ((c.x - px) ** 2 + (c.y - top) ** 2) < (0.01 + 0.03 * along) ** 2
    c.paint(sign, 'TrafficSign', p['sign_colour'])

  # Vehicles and pedestrians, nearest last so they occlude the far ones.
  movers = [('Vehicles', lane, ((d0 - move * 1.5) % 1.0) * 0.9 + 0.1, col)
            for lane, d0, col in p['vehicles']]
  movers += [('Pedestrian', side, ((d0 + move) % 1.0) * 0.9 + 0.1, col)
             for side, d0, col in p['people']]
  for cls, lateral, along, col in sorted(movers, key=lambda m: m[2]):
    py = hz + (1 - hz) * along
    if cls == 'Vehicles':
      px = vp + lateral * p['road_half'] * along * 0.7
      bw, bh = 0.25 * along, 0.16 * along
      body = (np.abs(c.x - px) < bw / 2) & (c.y < py) & (c.y > py - bh)
      c.paint(body, cls, col)
      glass = body & (c.y < py - bh * 0.55) & (np.abs(c.x - px) < bw * 0.35)
      c.image[glass] = (40, 50, 60)
    else:
      px = vp + lateral * (p['road_half'] + p['walk'] * 0.5) * along
      pw, ph = 0.03 * along + 0.004, 0.22 * along + 0.02
      body = (((c.x - px) / pw) ** 2 + ((c.y - (py - ph / 2)) / (ph / 2)) ** 2) < 1
      c.paint(body, cls, col)

  c.image *= p['light']
  c.image += rng.normal(0, 6.0, c.image.shape)
  return np.clip(c.image, 0, 255).astype(np.uint8), c.label


def generate(data_dir: str | os.PathLike, *, num_clips: int, frames_per_clip: int,
             height: int, width: int, seed: int) -> epath.Path:
  """Writes the dataset to `data_dir` in the lab layout unless already complete.

  Generation goes to a temporary folder that is renamed into place only when
  every file is written, with a marker recording the parameters; so a killed
  generation is never mistaken for a whole dataset, and a folder made with
  other parameters is an error rather than silently reused.
  """
  root = epath.Path(data_dir)
  spec = dict(num_clips=num_clips, frames_per_clip=frames_per_clip,
              height=height, width=width, seed=seed, version=1)
  marker = root / MARKER
  if marker.exists():
    found = json.loads(marker.read_text())
    if found != spec:
      raise DataError(
          f'{root} holds synthetic data made with {found}, but the config asks for {spec}; '
          f'point config.data.data_dir elsewhere or delete that folder')
    return root
  if root.exists() and any(root.iterdir()):
    raise DataError(f'{root} exists, is not empty and is not a complete synthetic '
                             f'dataset ({MARKER} missing); refusing to write into it')
  tmp = epath.Path(str(root) + f'.tmp-{os.getpid()}')
  if tmp.exists():
    tmp.rmtree()
  logging.info('Generating %d synthetic clips x %d frames (%dx%d) into %s',
               num_clips, frames_per_clip, height, width, root)
  frame = 0
  for clip in range(num_clips):
    rng = np.random.default_rng([seed, clip])
    params = _clip_params(rng)
    frame += 100  # a gap > 40 between clips, as in the real frame numbering.
    for t in range(frames_per_clip):
      image, label = render_frame(params, t, height, width, rng)
      reading.write_pair(tmp, f'{frame:06d}', image, label)
      frame += 1
  (tmp / MARKER).write_text(json.dumps(spec))
  if root.exists():
    root.rmdir()
  root.parent.mkdir(parents=True, exist_ok=True)
  tmp.rename(root)
  return root
