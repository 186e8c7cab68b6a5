"""Benchmark: the noise of an image loss's gradient, against the noise of the
derivative image's total.

``pbdr bench`` scores the total Σ dI/dθ, the derivative of the image's
sum. Where the derivative image holds large parts of both signs (a smooth
object sliding sideways brightens the pixels ahead of it and darkens those
behind), that sum is a small residual and its relative standard error says
more about the cancellation than about the estimator. An optimization sees
instead the gradient of a loss against a target, here the L2 loss to the
image with the object moved by ``δ`` (``--delta-eps`` times the case's FD
step) along the case's direction:

    dL/dθ = 2 Σ (I(0) - I(δ)) · dI/dθ

Per case, with the weights W = I(0) - I(δ) rendered once at ``--target-spp``
(they define the loss; their noise is the same for both sides): the FD
reference's Σ W · FD and its standard error over its seeds, the
integrator's Σ W · dI/dθ over ``--seeds`` gradients at ``--spp``, its
relative standard error and z; and beside them the plain total's relative
standard error, and that standard error relative to Σ |FD block| (the
size of the derivative image rather than its residual), and the
cancellation ratio Σ |FD block| / |FD total|.

    python scripts/bench_loss_gradient.py [--suite scenes/bench/real_geometry.toml] [--spp 256] [--seeds 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402


def run_case(case, cache: str, args: argparse.Namespace) -> None:
    import mitsuba as mi

    from pbdr.bench.refs import load_reference
    from pbdr.scene import make_integrator

    fd = load_reference(cache, case).fd
    scene, p = case.load()
    params = mi.traverse(scene)
    image = pbdr.render(scene, args.target_spp, seed=1)
    p.apply(params, args.delta_eps * case.eps)
    target = pbdr.render(scene, args.target_spp, seed=2)
    p.restore(params)
    weights = 2.0 * (image - target)

    integrator = make_integrator(scene, args.integrator)
    grads = pbdr.Estimate(np.stack([pbdr.derivative(scene, p, args.spp, seed=1000 + s, integrator=integrator)
                                    for s in range(args.seeds)]))
    # Σ W · dI/dθ per seed: the total of the weighted images
    fd_loss, loss = pbdr.Estimate(fd.samples * weights), pbdr.Estimate(grads.samples * weights)
    size = float(np.abs(fd.blocks().mean(0)).sum())
    z = (loss.total - fd_loss.total) / np.hypot(loss.total_se, fd_loss.total_se)
    print(f"{case.name:20s} loss gradient {loss.total:+10.5g} ± {loss.total_se:8.3g} "
          f"({loss.total_se / abs(fd_loss.total):6.1%})  FD {fd_loss.total:+10.5g} ± {fd_loss.total_se:8.3g}  "
          f"z {z:+5.2f}  |  total {grads.total:+8.1f} ± {grads.total_se:6.1f}: "
          f"{grads.total_se / abs(fd.total):6.1%} of |FD total|, {grads.total_se / size:5.1%} of Σ|FD block|  "
          f"cancellation {size / abs(fd.total):5.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="scenes/bench/real_geometry.toml")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--integrator", default="pbdr_edge")
    ap.add_argument("--spp", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--delta-eps", type=float, default=10.0, help="the target's offset, in FD steps")
    ap.add_argument("--target-spp", type=int, default=1024)
    args = ap.parse_args()
    from pbdr.bench.manifest import load_manifest
    from pbdr.bench.refs import default_cache

    pbdr.set_variant()
    pbdr.errors.set_quiet(True)
    suite = load_manifest(ROOT / args.suite)
    cases = suite.select(args.only.split(",")) if args.only else suite.cases
    cache = default_cache(str(ROOT / args.suite))
    for case in cases:
        run_case(case, cache, args)


if __name__ == "__main__":
    main()
