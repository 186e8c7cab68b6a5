"""Benchmark: pbdr_edge vs Mitsuba's prb_projective on the same scenes, spp and machine.

For each scene and parameter it prints seconds per forward-mode gradient
(median over ``--repeats`` after one JIT warm-up call) and the error against
central finite differences (8x8 block error and z-score of the total, from
``pbdr.compare`` over ``--seeds`` seeds), side by side:

    python scripts/bench_edge.py [--spp 32] [--fd-spp 256] [--seeds 4] [--only shadow]

Both integrators get the scene's max_depth and the same spp; pbdr_edge's
per-term counts are its defaults (edge samples = spp/2 per pixel).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import mitsuba as mi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402

# (name, scene file, XML defaults, parameter, translation, FD eps)
CASES = [
    ("primary-cube", "scenes/edge/primary.xml", {}, "cube.vertex_positions", (1, 0, 0), 0.002),
    ("open-quad", "scenes/edge/primary.xml", {}, "quad.vertex_positions", (0, 1, 0), 0.002),
    ("shadow", "scenes/shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), 0.002),
]


def timed(scene: mi.Scene, p: pbdr.Perturbation, integrator: mi.Integrator, spp: int,
          repeats: int) -> float:
    pbdr.derivative(scene, p, spp, seed=0, integrator=integrator)      # JIT warm-up
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        pbdr.derivative(scene, p, spp, seed=1 + k, integrator=integrator)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--fd-spp", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=None, help="run only the case with this name")
    ap.add_argument("--skip-projective", action="store_true", help="time pbdr_edge only")
    args = ap.parse_args(argv)
    pbdr.set_variant(None)

    print(f"{'scene':14s} {'integrator':16s} {'s/grad':>8s} {'block err':>10s} {'noise':>8s} {'z':>7s}")
    for name, path, defines, key, direction, eps in CASES:
        if args.only and name != args.only:
            continue
        scene = pbdr.load_scene(ROOT / path, defines)
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, direction)
        depth = pbdr.scene.integrator_setting(scene.integrator(), "max_depth")
        fd = pbdr.finite_differences(scene, p, eps, args.fd_spp, args.seeds)
        kinds = ["pbdr_edge"] + ([] if args.skip_projective else ["prb_projective"])
        for kind in kinds:
            integrator = mi.load_dict({"type": kind, "max_depth": depth})
            seconds = timed(scene, p, integrator, args.spp, args.repeats)
            grad = pbdr.derivative_estimate(scene, p, args.spp, args.seeds, integrator)
            r = pbdr.compare(grad, fd)
            print(f"{name:14s} {kind:16s} {seconds:8.3f} {r.block_error:10.2%} {r.block_noise:8.2%} "
                  f"{r.z:+7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
