"""Regenerate the meshes of the bumps example: ``python scenes/opt_bumps/make_meshes.py``.

- ``sphere.ply``: a unit icosphere subdivided four times (2,562 vertices,
  5,120 faces) with per-vertex normals: the optimization's start;
- ``bumps.ply``: the same vertices moved radially by a smooth sum of
  Gaussian bumps and dents (heights up to 15% of the
  radius, widths 0.3 to 0.4 radian; the mean radius stays within 2%): the target;
- ``sphere_small.ply``, ``bumps_small.ply``: the same at three subdivisions
  (642 vertices, 1,280 faces), for the short test.

Binary PLY, unit radius around the origin (the scene scales and places
them). Deterministic: no random numbers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "edge"))
sys.path.insert(0, str(HERE.parent / "bench"))
from make_assets import vertex_normals, write_ply  # noqa: E402
from make_icosphere import icosphere  # noqa: E402

# (direction, height as a fraction of the radius, angular width in radians)
BUMPS = [((0.6, 0.5, 0.62), 0.15, 0.30),
         ((-0.7, 0.3, 0.4), 0.15, 0.30),
         ((0.1, 0.9, -0.4), 0.15, 0.35),
         ((-0.3, 0.2, -0.9), 0.15, 0.30),
         ((0.9, -0.1, -0.4), -0.12, 0.35),
         ((0.0, 0.1, 1.0), -0.12, 0.30),
         ((-0.8, -0.5, -0.3), 0.12, 0.35),
         ((0.3, -0.9, 0.3), -0.10, 0.40)]


def bump_radius(directions: np.ndarray) -> np.ndarray:
    """Radius of the bumped surface along unit ``directions`` (N x 3)."""
    r = np.ones(len(directions))
    for axis, height, width in BUMPS:
        a = np.asarray(axis) / np.linalg.norm(axis)
        angle = np.arccos(np.clip(directions @ a, -1.0, 1.0))
        r += height * np.exp(-0.5 * (angle / width) ** 2)
    return r


def main() -> None:
    for subdivisions, suffix in ((4, ""), (3, "_small")):
        v, f = icosphere(subdivisions)
        write_ply(HERE / f"sphere{suffix}.ply", v, f, vertex_normals(v, f))
        b = v * bump_radius(v)[:, None]
        write_ply(HERE / f"bumps{suffix}.ply", b, f, vertex_normals(b, f))
        print(f"wrote sphere{suffix}.ply and bumps{suffix}.ply ({len(v)} vertices, {len(f)} faces)")


if __name__ == "__main__":
    main()
