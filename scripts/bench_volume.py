"""pbdr_volume vs Mitsuba's prbvolpath: time per reverse-mode gradient and error vs FD.

    python scripts/bench_volume.py [--scene scenes/volume/smoke.xml]
        [--param smoke.interior_medium.sigma_t.data] [--spp 64] [--seeds 8]

Both integrators compute d(Σ W·I)/dθ in reverse mode (render_backward) on
the same scene, spp and machine, for two weight images W: all ones (the
image total, where attenuation and in-scattering partly cancel) and the
sign of an independent finite-difference estimate (so that every pixel
counts). The reference is central FD of ``volpath`` with common random
numbers. Times are medians over the seeds after one warm-up gradient (JIT).
"""
from __future__ import annotations

import argparse
import time

import mitsuba as mi
import numpy as np

import pbdr


def gradients(scene: mi.Scene, p: pbdr.Perturbation, integrator: mi.Integrator, spp: int,
              seeds: int, weights: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """seeds x len(weights) reverse-mode derivatives, and the median seconds per gradient."""
    pbdr.total_derivative(scene, p, spp, 999, integrator, weights=weights[0])  # warm-up (JIT)
    values, times = [], []
    for seed in range(seeds):
        row = []
        for w in weights:
            t0 = time.perf_counter()
            row.append(pbdr.total_derivative(scene, p, spp, 100 + seed, integrator, weights=w))
            times.append(time.perf_counter() - t0)
        values.append(row)
    return np.array(values), float(np.median(times))


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(len(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="scenes/volume/smoke.xml")
    ap.add_argument("--param", default="smoke.interior_medium.sigma_t.data")
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--fd-spp", type=int, default=512)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--max-depth", type=int, default=4)
    args = ap.parse_args()

    pbdr.set_variant(None)
    scene = pbdr.load_scene(args.scene)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), args.param)

    sign = np.sign(pbdr.finite_differences(scene, p, args.eps, args.fd_spp, seeds=2,
                                           first_seed=5000).mean)
    weights = [np.ones_like(sign), sign.astype(np.float32)]
    fd = pbdr.finite_differences(scene, p, args.eps, args.fd_spp, seeds=args.seeds, progress=True)
    fd_vals = np.array([[float((s * w).sum(dtype=np.float64)) for w in weights] for s in fd.samples])
    fd_mean, fd_se = mean_se(fd_vals)

    rows = {}
    for name in ("pbdr_volume", "prbvolpath"):
        integrator = mi.load_dict({"type": name, "max_depth": args.max_depth})
        vals, t = gradients(scene, p, integrator, args.spp, args.seeds, weights)
        rows[name] = (mean_se(vals), t)

    print(f"scene {args.scene}, d/dθ of {p.describe()}, {args.spp} spp, {args.seeds} seeds, "
          f"max_depth {args.max_depth}; FD: volpath, eps {args.eps}, {args.fd_spp} spp")
    print(f"{'':14s}{'s/gradient':>12s}  {'W = 1 (total)':>28s}  {'W = sign(FD)':>28s}")
    print(f"{'FD (volpath)':14s}{'':>12s}  " + "  ".join(
        f"{m:+12.4g} ± {s:<8.3g} {'':5s}" for m, s in zip(fd_mean, fd_se)))
    for name, ((m, s), t) in rows.items():
        cells = []
        for j in range(len(weights)):
            z = (m[j] - fd_mean[j]) / np.hypot(s[j], fd_se[j])
            cells.append(f"{m[j]:+12.4g} ± {s[j]:<8.3g} z={z:+5.1f}")
        print(f"{name:14s}{t:12.3f}  " + "  ".join(cells))
    ratio = rows["pbdr_volume"][1] / rows["prbvolpath"][1]
    print(f"time ratio pbdr_volume / prbvolpath: {ratio:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
