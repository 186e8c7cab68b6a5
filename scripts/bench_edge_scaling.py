"""Benchmark: pbdr_edge's cost and noise against the face count of a smooth mesh.

The bench blob (``scenes/bench/blob.xml``, a smooth displaced icosphere
over a floor under an area light) at 1,280, 20,480, 81,920 and 1,310,720
faces (``make_assets.py --subdivisions 3, 5, 6, 8``, written once to
``--cache``), translated sideways. For each size it prints, side by side in
one run, the seconds per forward-mode gradient of each term alone
(median of ``--repeats`` after a warm-up) and the secondary term's block
variance (8x8 block sums over ``--seeds`` seeds) with ``edge_candidates``
M = 128 and M = 2048, their efficiency ratio 1 / (variance x seconds), and
the whole gradient's time relative to the smallest mesh:

    python scripts/bench_edge_scaling.py [--spp 64] [--seeds 6] [--sizes 3,5,6,8]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mitsuba as mi
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402

KEY = "blob.vertex_positions"


def mesh_file(cache: Path, subdivisions: int) -> Path:
    path = cache / f"blob_{subdivisions}.ply"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "scenes/bench/make_assets.py"), "--subdivisions",
                        str(subdivisions), "--out", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def timed(scene: mi.Scene, p: pbdr.Perturbation, spp: int, repeats: int, **props) -> float:
    integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": 2, **props})
    pbdr.derivative(scene, p, spp, 999, integrator)      # JIT warm-up
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        pbdr.derivative(scene, p, spp, seed, integrator)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def block_variance(scene: mi.Scene, p: pbdr.Perturbation, spp: int, seeds: int, **props) -> float:
    integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": 2, **props})
    est = pbdr.Estimate(np.stack([pbdr.derivative(scene, p, spp, 100 + s, integrator) for s in range(seeds)]))
    return float(est.blocks().var(axis=0, ddof=1).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--sizes", default="3,5,6,8", help="subdivision levels (faces: 20 x 4^N)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out/bench_edge_scaling")
    args = ap.parse_args()
    secondary = dict(interior=False, primary=False)
    print("faces | s/grad all (x smallest) | interior | primary | secondary M=128 | M=2048 "
          "| secondary block var M=128 | M=2048 | efficiency M=2048 / M=128")
    base = None
    for n in (int(s) for s in args.sizes.split(",")):
        scene = pbdr.load_scene(ROOT / "scenes/bench/blob.xml",
                                {"max_depth": "2", "res": str(args.res), "mesh": str(mesh_file(args.cache, n))})
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), KEY, (1, 0, 0))
        t_all = timed(scene, p, args.spp, args.repeats)
        base = base or t_all
        t_int = timed(scene, p, args.spp, args.repeats, primary=False, secondary=False)
        t_pri = timed(scene, p, args.spp, args.repeats, interior=False, secondary=False)
        t_s = {m: timed(scene, p, args.spp, args.repeats, edge_candidates=m, **secondary) for m in (128, 2048)}
        v_s = {m: block_variance(scene, p, args.spp, args.seeds, edge_candidates=m, **secondary) for m in (128, 2048)}
        gain = (v_s[128] * t_s[128]) / (v_s[2048] * t_s[2048])
        print(f"{20 * 4 ** n:,} | {t_all:.2f} ({t_all / base:.2f}x) | {t_int:.2f} | {t_pri:.2f} | "
              f"{t_s[128]:.2f} | {t_s[2048]:.2f} | {v_s[128]:.3g} | {v_s[2048]:.3g} | {gain:.1f}x", flush=True)


if __name__ == "__main__":
    main()
