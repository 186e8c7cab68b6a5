"""Benchmark: pbdr_reparam next to pbdr_edge and Mitsuba's prb_projective.

Mesh scenes: seconds per forward-mode gradient of each integrator (median
over ``--repeats`` calls after a JIT warm-up, the integrators timed
interleaved, so machine load hits all alike) and the error against central
finite differences (``pbdr.compare`` over ``--seeds`` seeds: 8x8 block error,
the block error that noise alone would give, z of the total, block chi2).
SDF scenes (no other integrator gives sdfgrid a boundary term): pbdr_reparam's
seconds per gradient and error, by default at 64x64 and 256 spp.

    python scripts/bench_reparam.py [--only mesh|sdf|NAME,...] [--spp 32] [--sdf-spp 256]
                                    [--sdf-res 64] [--seeds 4] [--rays 16]

All scenes use a Gaussian pixel filter (pbdr_reparam needs a smooth one);
scenes/shadow.xml is loaded with its box filter replaced.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mitsuba as mi
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402

# name: (kind, scene file, XML defaults, parameter, translate, FD eps)
CASES = {
    "primary-cube": ("mesh", "scenes/edge/primary.xml", {"rfilter": "gaussian"},
                     "cube.vertex_positions", (1, 0, 0), 0.002),
    "shadow-cube": ("mesh", "scenes/shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), 0.002),
    "sdf-shrink": ("sdf", "scenes/reparam/sdf_sphere.xml", {}, "sdf.grid", None, 0.005),
    "sdf-translate": ("sdf", "scenes/reparam/sdf_sphere.xml", {}, "sdf.to_world", (0, 1, 0), 0.005),
    "sdf-shadow": ("sdf", "scenes/reparam/sdf_shadow.xml", {}, "sdf.to_world", (1, 0, 0), 0.005),
    "sdf-shadow-up": ("sdf", "scenes/reparam/sdf_shadow.xml", {}, "sdf.to_world", (0, 1, 0), 0.005),
}


def scene_file(path: str) -> str:
    """The scene, with a Gaussian pixel filter (a temporary copy when it has a box one)."""
    text = (ROOT / path).read_text()
    if '<rfilter type="box"/>' not in text:
        return str(ROOT / path)
    tmp = tempfile.NamedTemporaryFile("w", suffix=".xml", dir=(ROOT / path).parent, delete=False)
    tmp.write(text.replace('<rfilter type="box"/>', '<rfilter type="gaussian"/>'))
    tmp.close()
    return tmp.name


def load(name: str, res: int) -> tuple[mi.Scene, pbdr.Perturbation, int, float]:
    _, path, defines, key, translate, eps = CASES[name]
    file = scene_file(path)
    try:
        scene = pbdr.load_scene(file, {**defines, "res": res})
    finally:
        if file != str(ROOT / path):
            Path(file).unlink()
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate)
    depth = pbdr.scene.integrator_setting(scene.integrator(), "max_depth")
    return scene, p, depth, eps


def integrators(kind: str, depth: int, rays: int) -> dict[str, mi.Integrator]:
    out = {"pbdr_reparam": mi.load_dict({"type": "pbdr_reparam", "max_depth": depth,
                                         "reparam_rays": rays})}
    if kind == "mesh":
        out["pbdr_edge"] = mi.load_dict({"type": "pbdr_edge", "max_depth": depth})
        out["prb_projective"] = mi.load_dict({"type": "prb_projective", "max_depth": depth})
    return out


def seconds(scene: mi.Scene, p: pbdr.Perturbation, its: dict[str, mi.Integrator], spp: int,
            repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in its}
    for name, it in its.items():                       # JIT warm-up
        pbdr.derivative(scene, p, spp, seed=1, integrator=it)
    for r in range(repeats):                           # interleaved
        for name, it in its.items():
            t = time.perf_counter()
            pbdr.derivative(scene, p, spp, seed=2 + r, integrator=it)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="")
    ap.add_argument("--spp", type=int, default=32, help="gradient spp on mesh scenes")
    ap.add_argument("--res", type=int, default=32, help="image size of mesh scenes")
    ap.add_argument("--sdf-spp", type=int, default=256)
    ap.add_argument("--sdf-res", type=int, default=64)
    ap.add_argument("--fd-spp", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rays", type=int, default=16, help="pbdr_reparam auxiliary rays")
    ap.add_argument("--variant", default=None)
    args = ap.parse_args()
    pbdr.set_variant(args.variant)
    wanted = [w for w in args.only.split(",") if w]
    names = [n for n in CASES if not wanted or n in wanted or CASES[n][0] in wanted]

    print(f"{'scene':15s} {'integrator':15s} {'s/grad':>8s} {'ratio':>6s} {'blockerr':>9s} "
          f"{'noise':>7s} {'z':>6s} {'chi2':>7s}")
    for name in names:
        kind = CASES[name][0]
        res, spp = (args.res, args.spp) if kind == "mesh" else (args.sdf_res, args.sdf_spp)
        scene, p, depth, eps = load(name, res)
        its = integrators(kind, depth, args.rays)
        fd = pbdr.finite_differences(scene, p, eps, args.fd_spp, args.seeds)
        secs = seconds(scene, p, its, spp, args.repeats) if args.repeats > 0 else {}
        base = secs.get("pbdr_reparam")
        for it_name, it in its.items():
            grad = pbdr.derivative_estimate(scene, p, spp, args.seeds, it)
            r = pbdr.compare(grad, fd)
            s = secs.get(it_name, float("nan"))
            ratio = s / base if base else float("nan")
            print(f"{name:15s} {it_name:15s} {s:8.2f} {ratio:6.2f} {r.block_error:9.1%} "
                  f"{r.block_noise:7.1%} {r.z:+6.2f} {r.block_chi2:7.2f}", flush=True)


if __name__ == "__main__":
    main()
