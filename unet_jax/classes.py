"""CARLA 0.9.11 semantic tags: the class names and display palette.

Indices match the lab data (`../shared/data/carla_lab/README.md`): the mask PNG
stores the tag in channel 0, so 23 classes, 0..22.
"""

CARLA_CLASS_NAMES: tuple[str, ...] = (
    'Unlabeled', 'Building', 'Fence', 'Other', 'Pedestrian', 'Pole',
    'RoadLine', 'Road', 'SideWalk', 'Vegetation', 'Vehicles', 'Wall',
    'TrafficSign', 'Sky', 'Ground', 'Bridge', 'RailTrack', 'GuardRail',
    'TrafficLight', 'Static', 'Dynamic', 'Water', 'Terrain',
)

# Index of each tag by name, so code reads `CARLA['Road']`, not a bare 7.
CARLA: dict[str, int] = {name: i for i, name in enumerate(CARLA_CLASS_NAMES)}

# CARLA's own colour convention for the semantic camera (RGB), used to draw
# masks so that pictures from this code look like CARLA's.
CARLA_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60),
    (153, 153, 153), (157, 234, 50), (128, 64, 128), (244, 35, 232),
    (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0),
    (70, 130, 180), (81, 0, 81), (150, 100, 100), (230, 150, 140),
    (180, 165, 180), (250, 170, 30), (110, 190, 160), (170, 120, 50),
    (45, 60, 150), (145, 170, 100),
)
