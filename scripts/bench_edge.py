"""Benchmark: pbdr_edge vs Mitsuba's prb_projective on the same scenes, spp and machine.

For each scene and parameter it prints, side by side, seconds per
forward-mode gradient (median over at least ``--repeats`` calls, and
at least a second of calls, after one JIT warm-up call, the two
integrators timed interleaved) and the error against
central finite differences (``pbdr.compare`` over ``--seeds`` seeds: 8x8
block error, the block error noise alone would give, z-score of the total,
block chi-square), and the time ratio:

    python scripts/bench_edge.py [--spp 32] [--res 64] [--fd-spp 256] [--seeds 4] [--only shadow,cbox]

``--terms`` instead measures pbdr_edge's parts on each scene: seconds and
block variance of the interior, primary and secondary terms alone at their
default sample counts, and the secondary term with ``uniform`` and
``importance`` edge sampling at equal samples (variance, seconds, and
efficiency 1 / (variance x seconds), relative to uniform).

Both integrators get the scene's max_depth and the same spp; pbdr_edge's
per-term counts are its defaults, prb_projective's boundary sample counts
are Mitsuba's defaults.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import mitsuba as mi
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402

# name: (scene file, XML defaults, parameter, translate, rotate, FD eps)
CASES = {
    "primary-cube": ("scenes/edge/primary.xml", {}, "cube.vertex_positions", (1, 0, 0), None, 0.002),
    "open-quad": ("scenes/edge/primary.xml", {}, "quad.vertex_positions", (0, 1, 0), None, 0.002),
    "shadow": ("scenes/shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), None, 0.002),
    "cbox": ("scenes/cbox.xml", {}, "box.vertex_positions", (1, 0, 0), None, 0.002),
    "cbox-mesh-ball": ("scenes/edge/cbox_mesh_ball.xml", {}, "box.vertex_positions", (1, 0, 0), None, 0.002),
    "icosphere": ("scenes/edge/icosphere.xml", {}, "sphere.vertex_positions", (1, 0, 0), None, 0.002),
    "smooth-icosphere": ("scenes/edge/icosphere.xml", {"face_normals": "false"}, "sphere.vertex_positions",
                         (1, 0, 0), None, 0.002),
    "smooth-pair": ("scenes/edge/smooth_pair.xml", {}, "left.vertex_positions", (1, 0, 0), None, 0.002),
    "rotation": ("scenes/shadow.xml", {}, "cube.vertex_positions", None, (0, 1, 0), 0.002),
    "moving-light": ("scenes/shadow.xml", {}, "light.to_world", (1, 0, 0), None, 0.002),
}


def load(name: str, res: int | None = None) -> tuple[mi.Scene, pbdr.Perturbation, int, float]:
    path, defines, key, translate, rotate, eps = CASES[name]
    scene = pbdr.load_scene(ROOT / path, {**defines, **({"res": str(res)} if res else {})})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate, rotate)
    depth = pbdr.scene.integrator_setting(scene.integrator(), "max_depth")
    return scene, p, depth, eps


MIN_TIMED_SECONDS = 1.0   # fast cases repeat until each integrator has run this long
MAX_REPEATS = 25


def seconds(scene: mi.Scene, p: pbdr.Perturbation, integrators: dict[str, mi.Integrator], spp: int,
            repeats: int) -> dict[str, float]:
    """Median seconds per gradient of each integrator, timed interleaved after a
    warm-up: at least ``repeats`` calls each, more (up to ``MAX_REPEATS``) until
    every integrator has run ``MIN_TIMED_SECONDS``; a median of three
    20 ms calls on a noisy machine moves by 10%."""
    for integrator in integrators.values():
        pbdr.derivative(scene, p, spp, seed=0, integrator=integrator)
    times: dict[str, list[float]] = {k: [] for k in integrators}
    r = 0
    while r < repeats or (r < MAX_REPEATS and min(sum(v) for v in times.values()) < MIN_TIMED_SECONDS):
        for kind, integrator in integrators.items():
            start = time.perf_counter()
            pbdr.derivative(scene, p, spp, seed=1 + r, integrator=integrator)
            times[kind].append(time.perf_counter() - start)
        r += 1
    return {k: statistics.median(v) for k, v in times.items()}


def compare_integrators(args: argparse.Namespace, names: list[str]) -> None:
    print(f"{'scene':13s} {'integrator':15s} {'s/grad':>8s} {'block err':>10s} {'noise':>8s} "
          f"{'z':>7s} {'chi2':>7s} {'time ratio':>11s}")
    for name in names:
        scene, p, depth, eps = load(name, args.res)
        fd = pbdr.finite_differences(scene, p, eps, args.fd_spp, args.seeds)
        kinds = ["pbdr_edge"] + ([] if args.skip_projective else ["prb_projective"])
        integrators = {k: mi.load_dict({"type": k, "max_depth": depth}) for k in kinds}
        secs = seconds(scene, p, integrators, args.spp, args.repeats)
        for kind, integrator in integrators.items():
            grad = pbdr.derivative_estimate(scene, p, args.spp, args.seeds, integrator)
            r = pbdr.compare(grad, fd)
            ratio = secs.get("prb_projective", float("nan")) / secs[kind]
            print(f"{name:13s} {kind:15s} {secs[kind]:8.3f} {r.block_error:10.2%} {r.block_noise:8.2%} "
                  f"{r.z:+7.2f} {r.block_chi2:7.2f} {ratio:10.2f}x", flush=True)


def variance_and_time(scene: mi.Scene, p: pbdr.Perturbation, integrator: mi.Integrator, spp: int,
                      seeds: int) -> tuple[float, float]:
    """(summed variance of 8x8 block sums over seeds, median seconds per gradient)."""
    pbdr.derivative(scene, p, spp, seed=10_000, integrator=integrator)
    images, times = [], []
    for s in range(seeds):
        start = time.perf_counter()
        images.append(pbdr.derivative(scene, p, spp, seed=s, integrator=integrator))
        times.append(time.perf_counter() - start)
    blocks = pbdr.Estimate(np.stack(images)).blocks()
    return float(blocks.var(axis=0, ddof=1).sum()), statistics.median(times)


def measure_terms(args: argparse.Namespace, names: list[str]) -> None:
    print(f"{'scene':13s} {'term':24s} {'s/grad':>8s} {'block var':>11s} {'efficiency':>11s}")
    for name in names:
        scene, p, depth, _ = load(name, args.res)

        def run(label: str, **kw) -> tuple[float, float]:
            integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": depth, **kw})
            var, sec = variance_and_time(scene, p, integrator, args.spp, args.seeds)
            eff = 1.0 / (var * sec) if var > 0 else float("inf")
            print(f"{name:13s} {label:24s} {sec:8.3f} {var:11.4g} {eff:11.4g}", flush=True)
            return var, sec
        run("interior", primary=False, secondary=False)
        run("primary", interior=False, secondary=False)
        run("secondary", interior=False, primary=False)
        n = max(1, args.spp // 2)     # equal samples for the three schemes
        results = {scheme: run(f"secondary {scheme} (n={n})", interior=False, primary=False,
                               spp_secondary=n, edge_sampling=scheme)
                   for scheme in ("uniform", "importance")}
        u_var, u_sec = results["uniform"]
        if u_var == 0:
            continue        # no secondary term (max_depth 1)
        for scheme, (var, sec) in results.items():
            print(f"{name:13s} {'  ' + scheme + ' vs uniform':24s} variance x{u_var / var:.3g} lower, "
                  f"time x{sec / u_sec:.3g}, efficiency x{u_var * u_sec / (var * sec):.3g}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--res", type=int, default=None, help="image width and height (default: the scene's, 32)")
    ap.add_argument("--fd-spp", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated case names (default: all)")
    ap.add_argument("--skip-projective", action="store_true", help="time pbdr_edge only")
    ap.add_argument("--terms", action="store_true",
                    help="per-term cost and variance, and edge sampling schemes compared")
    args = ap.parse_args(argv)
    pbdr.set_variant(None)
    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(CASES)}")
    (measure_terms if args.terms else compare_integrators)(args, names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
