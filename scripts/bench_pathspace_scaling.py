"""Benchmark: pbdr_pathspace against pbdr_edge by the face count of a smooth mesh.

The bench blob of ``bench_edge_scaling.py`` (a smooth displaced icosphere
over a floor, ``max_depth`` 2, translated sideways) at 20,480, 81,920 and
1,310,720 faces (``make_assets.py --subdivisions 5, 6, 8``, written once to
``--cache``). For each size, side by side in one run: each integrator at
its defaults, the median seconds per forward-mode gradient over ``--seeds``
seeds after a warm-up, the summed variance of the 8x8 block sums, and the
efficiency ratio 1 / (variance x seconds), pathspace over edge:

    python scripts/bench_pathspace_scaling.py [--spp 64] [--seeds 6] [--sizes 5,6,8]
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
sys.path.insert(0, str(ROOT / "scripts"))

import pbdr  # noqa: E402
from bench_edge_scaling import KEY, mesh_file  # noqa: E402

PLUGINS = ("pbdr_edge", "pbdr_pathspace")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--sizes", default="5,6,8", help="subdivision levels (faces: 20 x 4^N)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out/bench_edge_scaling")
    args = ap.parse_args()
    pbdr.set_variant()
    pbdr.errors.set_quiet(True)
    for n in (int(s) for s in args.sizes.split(",")):
        path = mesh_file(args.cache, n)
        scene = pbdr.load_scene(str(ROOT / "scenes/bench/blob.xml"),
                                {"mesh": str(path.resolve()), "max_depth": "2", "res": str(args.res)})
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), KEY, (1, 0, 0))
        row = {}
        for plugin in PLUGINS:
            integrator = mi.load_dict({"type": plugin, "max_depth": 2})
            pbdr.derivative(scene, p, args.spp, 999, integrator)       # JIT warm-up
            images, seconds = [], []
            for s in range(args.seeds):
                start = time.perf_counter()
                images.append(pbdr.derivative(scene, p, args.spp, 100 + s, integrator))
                seconds.append(time.perf_counter() - start)
            est = pbdr.Estimate(np.stack(images))
            row[plugin] = (statistics.median(seconds), float(est.blocks().var(axis=0, ddof=1).sum()))
            print(f"{20 * 4 ** n:>9,} faces  {plugin:15s} {row[plugin][0]:6.2f} s  block variance "
                  f"{row[plugin][1]:.4g}  total {est.total:+.1f} ± {est.total_se:.1f}", flush=True)
        (t_e, v_e), (t_p, v_p) = (row[k] for k in PLUGINS)
        print(f"{'':>9}        efficiency pbdr_pathspace / pbdr_edge: {(v_e * t_e) / (v_p * t_p):.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
