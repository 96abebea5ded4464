"""Benchmarks: `python -m bench.run` (speed against Keras and PyTorch), `python -m bench.pipeline`."""
