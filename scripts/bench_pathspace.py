"""Benchmark: pbdr_pathspace's boundary term against pbdr_edge's secondary term.

Both estimate the same integral (the boundary term beyond the camera's own
silhouettes), so each is run alone (interior and primary terms off) on the
same scene, at ``--spp`` samples per pixel of its own kind (boundary
segments for ``pathspace``, camera paths for ``secondary``), over
``--seeds`` seeds. Printed per scene and term: the total and its standard
error, the image variance (sum over pixels of the per-pixel variance of one
gradient), seconds per gradient (median after a JIT warm-up), and the
efficiency 1 / (variance x seconds) relative to the secondary term;
``agrees`` is ``pbdr.compare`` with the secondary term's images (block chi2
within its tolerance). ``guided`` is the path-space term with a guiding
grid (``pathspace_guiding`` = ``GUIDING``), learned from its own samples
from the warm-up call on: its timed calls draw from a grid the calls
before them refined, with no pass of its own.

    python scripts/bench_pathspace.py [--spp 64] [--res 32] [--seeds 8] [--only shadow,cbox]
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

# name: (scene file, XML defaults, parameter, translate, rotate, max_depth)
CASES = {
    "shadow": ("scenes/shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), None, 3),
    "moving-light": ("scenes/shadow.xml", {}, "light.to_world", (1, 0, 0), None, 3),
    "cbox": ("scenes/cbox.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4),
    "icosphere": ("scenes/edge/icosphere.xml", {}, "sphere.vertex_positions", (1, 0, 0), None, 3),
    "gap-room": ("scenes/bench/gap_room.xml", {}, "occluder.vertex_positions", (0, 0, 1), None, 5),
    # the contact and 20k-face cases of scenes/bench/real_geometry.toml
    "resting-box": ("scenes/edge/resting_box.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4),
    "stacked-boxes": ("scenes/edge/contact.xml", {}, "top.vertex_positions", (1, 0, 0), None, 3),
    "box-against-wall": ("scenes/edge/contact.xml", {}, "wallbox.vertex_positions", (1, 0, 0), None, 3),
    "resting-sphere": ("scenes/edge/contact.xml", {}, "ball.vertex_positions", (1, 0, 0), None, 3),
    "blob-20k": ("scenes/bench/blob.xml", {}, "blob.vertex_positions", (1, 0, 0), None, 2),
}

TERMS = {   # each draws ``spp`` samples per pixel of its kind (not its default share of the interior spp)
    "secondary": lambda depth, spp: {"type": "pbdr_edge", "max_depth": depth, "interior": False, "primary": False,
                                     "spp_secondary": spp, "first_bounce": "area"},   # pathspace's parameterization
    "pathspace": lambda depth, spp: {"type": "pbdr_pathspace", "max_depth": depth, "interior": False,
                                     "primary": False, "spp_pathspace": spp},
    "guided": lambda depth, spp: {"type": "pbdr_pathspace", "max_depth": depth, "interior": False, "primary": False,
                                  "spp_pathspace": spp, "pathspace_guiding": GUIDING},
}
GUIDING = 32     # uniform segments per pixel before the guided variant's grid guides


def run(name: str, spp: int, res: int, seeds: int) -> None:
    path, defines, key, translate, rotate, depth = CASES[name]
    scene = pbdr.load_scene(ROOT / path, {**defines, "res": str(res)})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate, rotate)
    results = {}
    for term, props in TERMS.items():
        integrator = mi.load_dict(props(depth, spp))
        pbdr.derivative(scene, p, spp, seed=999, integrator=integrator)      # JIT warm-up
        times, images = [], []
        for s in range(seeds):
            t = time.perf_counter()
            images.append(pbdr.derivative(scene, p, spp, seed=1000 + 7919 * s, integrator=integrator))
            times.append(time.perf_counter() - t)
        results[term] = (pbdr.Estimate(np.stack(images)), statistics.median(times))
    sec, t_sec = results["secondary"]
    agree = {k: pbdr.compare(e, sec).passed for k, (e, _) in results.items()}
    var = {k: float(e.samples.sum(-1).var(axis=0, ddof=1).sum()) for k, (e, _) in results.items()}
    eff_sec = 1 / (var["secondary"] * t_sec)
    for term, (est, t) in results.items():
        eff = 1 / (var[term] * t) / eff_sec
        print(f"{name:13s} {term:10s} total {est.total:+10.3f} ± {est.total_se:8.3f}  variance {var[term]:10.4g}  "
              f"{t:6.2f} s  efficiency {eff:6.2f}x" + (f"  agrees with secondary: {agree[term]}" if term != "secondary"
                                                      else ""),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--only", default=",".join(CASES))
    args = ap.parse_args()
    pbdr.set_variant()
    for name in args.only.split(","):
        run(name, args.spp, args.res, args.seeds)


if __name__ == "__main__":
    main()
