"""Benchmark: pbdr_pathspace (unguided and guided), pbdr_edge and Mitsuba's
prb_projective side by side, whole integrators at the same spp.

The cases are ``pbdr bench`` cases scored against their cached FD references
(``pbdr bench refs``): the indirect-dominated gap room (``suite.toml``'s
``indirect_occluder``), the contact cases and the 20,480-face smooth blob of
``real_geometry.toml``. Per case and integrator: one warm-up gradient (JIT;
for ``guided`` it also trains the grid, which is cached while the geometry
is unchanged), then ``--seeds`` timed gradients, the integrators taking
turns seed by seed so that a load on the machine falls on all of them
alike. Scored with ``pbdr.bench.score`` as ``pbdr bench run`` scores (block
error and its noise, z, block chi2, s.e. of the total; efficiency 1 /
(block variance x seconds per gradient); ``eff_total`` the same with the
variance of the total). ``guided`` (``pathspace_guiding`` 16) learns its
grid from its own samples over the calls (as over one ``pbdr check`` or an
optimization); ``guided-1st`` forgets the grid before every gradient, so
each is a first call (16 segments per pixel uniform, the rest from the
grid they build). ``learn`` is the seconds spent folding samples into the
grid and building it, as a fraction of one guided gradient.
``walks4``: ``pathspace_walks`` 4; ``guided-walks4`` both, and
``guided-walks4-x4`` at 4x the segments (``spp_pathspace`` 256);
``ps16`` and ``guided-ps16``: 16 segments per pixel (a quarter of the
default at 64 spp; guided after 4 uniform); ``edge-sec64``: ``pbdr_edge``
with ``spp_secondary`` 64 (8x its default at 64 spp). ``first_bounce``:
``edge-area``, ``edge-dir``, ``edge-auto`` (``pbdr_edge``'s default),
``edge-camera``, ``edge-moving`` (``solid_angle_after``), ``edge-chain2``
(``solid_angle_chain`` 2);
``ps-area``, ``ps-dir``, ``ps-auto``,
``guided-auto``, ``guided-walks4-auto``; with ``solid_angle_after``
``moving``: ``ps-moving``, ``guided-walks4-moving``.

Labels that set a few parameters leave the others at the plugin's current
defaults (``pbdr_pathspace``: guided, ``first_bounce`` ``auto``,
``solid_angle_after`` ``moving``); ``unguided``: ``pathspace_guiding`` 0;
``ps-fixed``: every vertex fixed in space, unguided (``pbdr_pathspace``'s
defaults before 2026-12-08), ``ps-fixed-guided`` the same guided.

    python scripts/bench_pathspace_equal_time.py [--spp 64] [--seeds 8] [--only indirect_occluder,...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import drjit as dr
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pbdr  # noqa: E402

# (manifest, case name)
CASES = [
    ("scenes/bench/suite.toml", "indirect_occluder"),
    ("scenes/bench/real_geometry.toml", "resting_glossy_box"),
    ("scenes/bench/real_geometry.toml", "stacked_boxes"),
    ("scenes/bench/real_geometry.toml", "box_against_wall"),
    ("scenes/bench/real_geometry.toml", "resting_sphere"),
    ("scenes/bench/real_geometry.toml", "smooth_mesh_20k"),
    ("scenes/bench/real_geometry.toml", "floating_cube"),
    ("scenes/bench/real_geometry.toml", "lifted_glossy_box"),
]
GUIDING = 16     # uniform segments per pixel before the grid guides
INTEGRATORS = {  # label: (plugin, props)
    "pbdr_edge": ("pbdr_edge", {}),
    "pbdr_pathspace": ("pbdr_pathspace", {}),
    "guided": ("pbdr_pathspace", {"pathspace_guiding": GUIDING}),
    "guided-1st": ("pbdr_pathspace", {"pathspace_guiding": GUIDING}),
    "walks4": ("pbdr_pathspace", {"pathspace_walks": 4}),
    "guided-walks4": ("pbdr_pathspace", {"pathspace_guiding": GUIDING, "pathspace_walks": 4}),
    "ps16": ("pbdr_pathspace", {"spp_pathspace": 16}),
    "guided-ps16": ("pbdr_pathspace", {"pathspace_guiding": 4, "spp_pathspace": 16}),
    "edge-sec64": ("pbdr_edge", {"spp_secondary": 64}),
    "edge-area": ("pbdr_edge", {"first_bounce": "area"}),
    "edge-dir": ("pbdr_edge", {"first_bounce": "direction"}),
    "edge-auto": ("pbdr_edge", {"first_bounce": "auto"}),
    "edge-camera": ("pbdr_edge", {"solid_angle_after": "camera"}),
    "edge-moving": ("pbdr_edge", {"solid_angle_after": "moving"}),
    "edge-chain2": ("pbdr_edge", {"solid_angle_after": "moving", "solid_angle_chain": 2}),
    "ps-auto": ("pbdr_pathspace", {"first_bounce": "auto"}),
    "ps-area": ("pbdr_pathspace", {"first_bounce": "area"}),
    "guided-auto": ("pbdr_pathspace", {"pathspace_guiding": GUIDING, "first_bounce": "auto"}),
    "guided-walks4-auto": ("pbdr_pathspace", {"pathspace_guiding": GUIDING, "pathspace_walks": 4,
                                              "first_bounce": "auto"}),
    "ps-dir": ("pbdr_pathspace", {"first_bounce": "direction"}),
    "ps-moving": ("pbdr_pathspace", {"first_bounce": "auto", "solid_angle_after": "moving"}),
    "guided-walks4-moving": ("pbdr_pathspace", {"pathspace_guiding": GUIDING, "pathspace_walks": 4,
                                                "first_bounce": "auto", "solid_angle_after": "moving"}),
    "guided-walks4-x4": ("pbdr_pathspace", {"pathspace_guiding": GUIDING, "pathspace_walks": 4,
                                            "spp_pathspace": 256}),
    "unguided": ("pbdr_pathspace", {"pathspace_guiding": 0}),
    "ps-fixed": ("pbdr_pathspace", {"first_bounce": "area", "solid_angle_after": "camera", "pathspace_guiding": 0}),
    "ps-fixed-guided": ("pbdr_pathspace", {"first_bounce": "area", "solid_angle_after": "camera"}),
    "prb_projective": ("prb_projective", {}),
}
FORGETS = {"guided-1st"}     # labels whose grid is dropped before every gradient
FIRST_SEED, WARMUP_SEED = 1000, 999      # as pbdr bench's workers


class LearningClock:
    """Seconds spent learning the guiding grid: folding a batch's samples into
    it and building its distribution (wraps those functions)."""

    def __init__(self) -> None:
        from pbdr.integrators.boundary import pathspace, pathspace_guiding
        self.seconds = 0.0

        def timed(f):
            def wrapper(*args, **kwargs):
                dr.sync_thread()        # the kernels queued before are not the learning's
                start = time.perf_counter()
                try:
                    return f(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            return wrapper
        pathspace.accumulate = timed(pathspace.accumulate)
        pathspace_guiding.RunningGrid.add = timed(pathspace_guiding.RunningGrid.add)
        pathspace_guiding.RunningGrid.grid = timed(pathspace_guiding.RunningGrid.grid)


def run_case(manifest: str, name: str, spp: int, seeds: int, labels: list[str], clock: LearningClock) -> None:
    from pbdr.bench.manifest import load_manifest
    from pbdr.bench.refs import default_cache, load_reference
    from pbdr.bench.score import score
    from pbdr.scene import make_integrator

    case = load_manifest(ROOT / manifest).select([name])[0]
    ref = load_reference(default_cache(str(ROOT / manifest)), case)
    scene, p = case.load()
    integrators = {k: make_integrator(scene, INTEGRATORS[k][0], props=INTEGRATORS[k][1] or None) for k in labels}

    from pbdr.integrators.boundary import pathspace_guiding
    learning = {k: [] for k in labels}

    def gradient(label: str, seed: int) -> tuple[np.ndarray, float]:
        if label in FORGETS:
            pathspace_guiding.forget(integrators[label])
        clock.seconds = 0.0
        start = time.perf_counter()
        image = pbdr.derivative(scene, p, spp, seed=seed, integrator=integrators[label])
        learning[label].append(clock.seconds)
        return image, time.perf_counter() - start

    pathspace_guiding.forget()

    for label in labels:
        gradient(label, WARMUP_SEED)
    images = {k: [] for k in labels}
    times = {k: [] for k in labels}
    for s in range(seeds):
        for label in labels:
            image, seconds = gradient(label, FIRST_SEED + s)
            images[label].append(image)
            times[label].append(seconds)
    rows = {label: (score(ref.fd, statistics.median(times[label]),
                          grad=pbdr.Estimate(np.stack(images[label]))), statistics.median(times[label]))
            for label in labels}
    base = rows["pbdr_edge"][0] if "pbdr_edge" in rows else None
    print(f"{name}: FD total {ref.fd.total:+.3f} ± {ref.fd.total_se:.3f}", flush=True)
    for label, (sc, sec) in rows.items():
        rel = (f"  eff/edge {sc.efficiency / base.efficiency:6.2f}x  eff_total/edge "
               f"{sc.total_efficiency / base.total_efficiency:6.2f}x" if base and sc.efficiency and base.efficiency
               else "")
        print(f"  {label:15s} {sc.total:+10.3f} ± {sc.total_se:8.3f}  z {sc.z:+6.2f}  block {sc.block_error:7.1%} "
              f"({sc.block_noise:6.1%})  chi2 {sc.block_chi2:6.2f}  {sec:7.3f} s  eff {sc.efficiency:9.3g}  "
              f"eff_total {sc.total_efficiency:9.3g}{rel}  {'AGREE' if sc.passed else 'DISAGREE'}", flush=True)
    for label in [k for k in labels if "pathspace_guiding" in INTEGRATORS[k][1]]:
        t = statistics.median(learning[label][1:])
        print(f"  {label} learning {t:.4f} s = {t / rows[label][1]:.1%} of one gradient (no pass of its own)",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--only", default=",".join(name for _, name in CASES))
    ap.add_argument("--integrators", default=",".join(INTEGRATORS))
    args = ap.parse_args()
    pbdr.set_variant()
    pbdr.errors.set_quiet(True)
    clock = LearningClock()
    labels = args.integrators.split(",")
    for manifest, name in CASES:
        if name in args.only.split(","):
            run_case(manifest, name, args.spp, args.seeds, labels, clock)


if __name__ == "__main__":
    main()
