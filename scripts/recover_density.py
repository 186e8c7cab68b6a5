"""Recover a density grid from multi-view images: scenes/volume/recover/config.toml.

    python scripts/recover_density.py [--iterations N] [--out runs/volume_recover]
        [--coarse 8 --coarse-iterations 30]

Runs ``pbdr optimize`` on the bundled config (four views, 16^3 sigma_t grid,
uniform start, total-variation prior) and prints the time, the loss at the
start and the end, and the RMS error of the grid against the truth grid
(recover/truth.vol) before and after. With ``--coarse R`` it first optimizes
an R^3 grid, resamples the result to 16^3 (``voxels.resample``) and continues
from there: coarse-to-fine.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

import pbdr
from pbdr.geometry import voxels
from pbdr.optimize import load_config, optimize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "scenes", "volume", "recover", "config.toml")
KEY = "smoke.interior_medium.sigma_t.data"


def rmse(grid: np.ndarray, truth: np.ndarray) -> float:
    grid = voxels.resample(grid.reshape(grid.shape[:3] + (1,)), truth.shape[:3])
    return float(np.sqrt(np.mean((grid - truth) ** 2)))


def run(config, out: str, density: str | None, iterations: int, shape: tuple) -> tuple[np.ndarray, list]:
    if density is not None:
        config = replace(config, defines={**config.defines, "density": density})
    result = optimize(config, iterations=iterations, out_dir=out, force=True)
    return np.array(result.values[KEY], dtype=np.float32).reshape(shape + (1,)), result.losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--iterations", type=int, default=None, help="default: the config's")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "volume_recover"))
    ap.add_argument("--coarse", type=int, default=None, help="first optimize at this grid resolution")
    ap.add_argument("--coarse-iterations", type=int, default=30)
    args = ap.parse_args()

    pbdr.set_variant(None)
    config = load_config(args.config)
    folder = os.path.dirname(config.scene)
    truth = voxels.read_vol(os.path.join(folder, "truth.vol"))
    init = voxels.read_vol(os.path.join(folder, "init.vol"))
    iterations = args.iterations or config.iterations
    t0 = time.perf_counter()
    losses = []
    density = None
    if args.coarse:
        os.makedirs(args.out, exist_ok=True)
        density = os.path.join(args.out, "coarse_init.vol")
        voxels.write_vol(density, voxels.resample(init, args.coarse))
        coarse, losses = run(config, os.path.join(args.out, "coarse"), density, args.coarse_iterations,
                             (args.coarse,) * 3)
        print(f"coarse {args.coarse}^3: grid RMS error {rmse(init, truth):.4f} -> {rmse(coarse, truth):.4f}")
        density = os.path.join(args.out, "coarse_result.vol")
        voxels.write_vol(density, voxels.resample(coarse, truth.shape[:3]))
    grid, fine_losses = run(config, args.out, density, iterations, truth.shape[:3])
    losses += fine_losses
    seconds = time.perf_counter() - t0
    k = min(5, len(losses) // 2)
    print(f"{len(losses)} iterations in {seconds:.1f} s; loss (mean of {k}) {np.mean(losses[:k]):.4g} -> "
          f"{np.mean(losses[-k:]):.4g}")
    print(f"grid RMS error vs truth: {rmse(init, truth):.4f} (initial) -> {rmse(grid, truth):.4f}; "
          f"outputs in {args.out} (comparison.png, loss.png)")


if __name__ == "__main__":
    main()
