"""Time per gradient: pbdr_interior vs Mitsuba's prb, same scene, spp and machine.

Forward mode (a derivative image) and reverse mode (a parameter gradient),
runs interleaved so that machine noise hits both alike; prints medians and
the ratio pbdr / Mitsuba. Usage:

    python scripts/bench_interior.py [--scene scenes/cbox.xml] [--res 64] [--spp 64] [--runs 7]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import drjit as dr
import numpy as np

import pbdr

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    dr.sync_thread()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default=str(ROOT / "scenes" / "cbox.xml"))
    ap.add_argument("--param", default="red.reflectance.value")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    pbdr.set_variant()
    scene = pbdr.load_scene(args.scene, {"res": args.res})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), args.param)
    integrators = {name: pbdr.make_integrator(scene, name) for name in ("pbdr_interior", "prb")}
    modes = {
        "forward": lambda integ, seed: pbdr.derivative(scene, p, args.spp, seed, integ),
        "reverse": lambda integ, seed: pbdr.total_derivative(scene, p, args.spp, seed, integ),
    }
    print(f"{Path(args.scene).name} {args.res}x{args.res}, {args.spp} spp, d/d {args.param}, "
          f"median of {args.runs} runs after warm-up")
    print(f"{'mode':8} {'pbdr_interior [s]':>18} {'prb [s]':>10} {'ratio':>7}   totals (seed 0)")
    for mode, fn in modes.items():
        times: dict[str, list[float]] = {name: [] for name in integrators}
        totals = {}
        for name, integ in integrators.items():            # warm-up: JIT compilation
            out = fn(integ, 0)
            totals[name] = float(np.sum(out)) if isinstance(out, np.ndarray) else out
        for run in range(args.runs):
            for name, integ in integrators.items():
                times[name].append(timed(lambda: fn(integ, run + 1)))
        ours, theirs = (statistics.median(times[n]) for n in integrators)
        print(f"{mode:8} {ours:18.4f} {theirs:10.4f} {ours / theirs:7.2f}   "
              f"{totals['pbdr_interior']:.5g} vs {totals['prb']:.5g}")


if __name__ == "__main__":
    main()
