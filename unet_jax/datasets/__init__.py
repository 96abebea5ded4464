"""TFDS builders for segmentation data (see `folder.py`)."""
