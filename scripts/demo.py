"""The bundled inverse-rendering demo: recover wall and box colours and the
light's radiance from one 32x32 image of a Cornell box, then print how close
each recovered parameter is to the truth.

    python scripts/demo.py            # ~20-60 s on 2 CPU cores

It runs exactly what ``pbdr optimize scenes/demo/config.toml --force`` runs;
the run folder (runs/demo/) holds params.json, loss.png, comparison.png and
the optimized scene as XML.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import pbdr
from pbdr.optimize import load_config, optimize, truth_values

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "scenes", "demo", "config.toml")


def main() -> int:
    pbdr.set_variant()
    config = load_config(CONFIG)
    truth = truth_values(config)
    start = time.perf_counter()
    # --force: the demo replaces its own previous run folder.
    result = optimize(config, force=True)
    print(f"\n{len(result.losses)} iterations with {result.integrator} in "
          f"{time.perf_counter() - start:.1f} s; outputs in {os.path.relpath(result.out_dir)}\n")
    print(f"{'parameter':34s} {'recovered':>26s} {'truth':>26s} {'max |error|':>12s}")
    worst = 0.0
    for key, value in result.values.items():
        true = np.array(truth[key])
        err = float(np.max(np.abs(np.array(value) - true)))
        rel = err / max(float(np.max(np.abs(true))), 1e-6)
        worst = max(worst, rel)
        fmt = lambda v: "[" + ", ".join(f"{x:.3f}" for x in v) + "]"  # noqa: E731
        print(f"{key:34s} {fmt(value):>26s} {fmt(true):>26s} {err:8.3f} ({100 * rel:.0f}%)")
    print(f"\nworst error relative to the parameter's magnitude: {100 * worst:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
