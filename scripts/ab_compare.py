"""Compare two versions of pbdr's integrators (for refactors that must not change derivatives).

Run each command with the Python of the checkout it measures (its own .venv):

    python scripts/ab_compare.py derivatives OUT.npz     # forward images and reverse totals
    python scripts/ab_compare.py compare A.npz B.npz      # largest difference per array
    python scripts/ab_compare.py timing [--reps 15] [--forward]

``derivatives``: pbdr_edge on the cases of ``bench_edge.py`` (24x24, 16 spp,
seed 5) plus the ``uniform`` edge scheme on the shadow scene, and
pbdr_volume on a moving cube and a moving smooth ball in media and on a
density. ``timing``: seconds per gradient at 64x64 and 32 spp, the median
of ``--reps`` calls after a warm-up; run the two versions alternately.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import mitsuba as mi  # noqa: E402

import pbdr  # noqa: E402
from bench_edge import CASES  # noqa: E402

# name: (scene, XML defaults, key, translate)
VOLUME_CASES = {
    "cube-medium": ("scenes/volume/cube_medium.xml", {"cube_x": "0.3", "cube_y": "1.45", "cube_z": "0.2",
                                                      "size": "0.12", "max_depth": "3"},
                    "cube.vertex_positions", (1, 0, 0)),
    "smooth-ball-medium": ("scenes/volume/smooth_ball_medium.xml", {}, "ball.vertex_positions", (1, 0, 0)),
    "smoke-density": ("scenes/volume/smoke.xml", {}, "smoke.interior_medium.sigma_t.data", None),
}


def cases(res: str) -> dict[str, tuple[mi.Scene, pbdr.Perturbation, mi.Integrator]]:
    out = {}
    edge = dict(CASES, **{"uniform-shadow": CASES["shadow"]})
    for name, (path, defines, key, translate, rotate, _) in edge.items():
        scene = pbdr.load_scene(ROOT / path, {**defines, "res": res})
        depth = pbdr.scene.integrator_setting(scene.integrator(), "max_depth")
        props = {"type": "pbdr_edge", "max_depth": depth}
        if name == "uniform-shadow":
            props["edge_sampling"] = "uniform"
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate, rotate)
        out[name] = (scene, p, mi.load_dict(props))
    for name, (path, defines, key, translate) in VOLUME_CASES.items():
        scene = pbdr.load_scene(ROOT / path, defines)
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate)
        out[name] = (scene, p, mi.load_dict({"type": "pbdr_volume", "max_depth": 3}))
    return out


def derivatives(out: str) -> None:
    arrays = {}
    for name, (scene, p, integrator) in cases("24").items():
        arrays[name + "/fwd"] = pbdr.derivative(scene, p, 16, 5, integrator)
        arrays[name + "/rev"] = np.array(pbdr.total_derivative(scene, p, 16, 5, integrator))
        print(f"{name:20s} forward sum {arrays[name + '/fwd'].sum():.7g}  reverse {float(arrays[name + '/rev']):.7g}")
    np.savez(out, **arrays)


def compare(a_path: str, b_path: str) -> None:
    a, b = np.load(a_path), np.load(b_path)
    same = 0
    for key in a.files:
        d = float(np.abs(a[key] - b[key]).max())
        same += d == 0
        if d:
            print(f"{key:28s} max |difference| {d:.3g}   max |value| {float(np.abs(a[key]).max()):.3g}")
    print(f"{same} of {len(a.files)} arrays bitwise equal")


def timing(reps: int, forward: bool) -> None:
    grad = pbdr.derivative if forward else pbdr.total_derivative
    chosen = ("shadow", "cbox", "icosphere", "smooth-icosphere", "smooth-ball-medium")
    medians = {}
    for name, (scene, p, integrator) in cases("64").items():
        if name not in chosen:
            continue
        grad(scene, p, 32, 0, integrator)                  # JIT warm-up
        seconds = []
        for seed in range(1, reps + 1):
            t = time.perf_counter()
            grad(scene, p, 32, seed, integrator)
            seconds.append(time.perf_counter() - t)
        medians[name] = statistics.median(seconds)
    print(" ".join(f"{k}={v:.4f}" for k, v in medians.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("derivatives").add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    t = sub.add_parser("timing")
    t.add_argument("--reps", type=int, default=15)
    t.add_argument("--forward", action="store_true")
    args = ap.parse_args()
    pbdr.set_variant(None)
    if args.what == "derivatives":
        derivatives(args.out)
    elif args.what == "compare":
        compare(args.a, args.b)
    else:
        timing(args.reps, args.forward)
    return 0


if __name__ == "__main__":
    sys.exit(main())
