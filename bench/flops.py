"""FLOPs per image of our train and inference steps, counted by XLA on this CPU.

FLOPs are a property of the program, not of the device it runs on, but a GPU
run cannot count them: JAX 0.11 gives no cost analysis for a step lowered for
a GPU, and the compiled step's leaves out the convolutions that run as cuDNN
calls. This fills them in for a results file of `bench.run` measured elsewhere
and prints its table, with FLOP/s against that machine's matrix-product rate:

  python -m bench.flops --results=docs/bench_gpu.json
"""

import argparse
import json


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--results', required=True, help="a bench.run JSON file, updated in place")
  args = parser.parse_args()
  from bench import run, worker

  with open(args.results) as f:
    results = json.load(f)
  for cell in results['cells']:
    for name in cell['images_per_s']:
      flags = run.SUBJECTS[name]
      if '--impl=jax' not in flags:
        continue
      subject_args = worker.parse_args(flags + [
          f"--mode={cell['mode']}", f"--height={cell['height']}", f"--width={cell['width']}",
          f"--batch={cell['batch']}", '--cpu_devices=1'])
      flops = worker.SUBJECTS['jax'](subject_args).flops_per_step
      cell.setdefault('flops_per_image', {})[name] = flops / cell['batch']
      print(f"{cell['mode']} {cell['height']}x{cell['width']} b{cell['batch']} {name}: "
            f"{flops / cell['batch'] / 1e9:.2f} GFLOP per image", flush=True)
  results['flops_counted_on'] = 'cpu (bench.flops)'
  run.save(results, args.results)
  print(run.table(results))


if __name__ == '__main__':
  main()
