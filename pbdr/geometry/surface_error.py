"""How far a recovered mesh is from a target surface, measured along rays.

Free-vertex optimization moves vertices along the surface as well as
across it, so vertex positions of two meshes cannot be compared; the
surfaces can. :func:`surface_rms_error` casts rays from a centre in many
directions (a Fibonacci sphere) and compares the distance to the first hit
on each mesh: for star-shaped meshes around the centre (a deformed sphere)
it is the RMS of the radial gap between the surfaces.
"""
from __future__ import annotations

from typing import Sequence

import mitsuba as mi
import numpy as np

from ..variant import ensure_variant


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors (count x 3) spread evenly over the sphere
    (the Fibonacci lattice: equal-area bands, golden-angle longitudes)."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def hit_distances(positions: np.ndarray, faces: np.ndarray, origin: Sequence[float],
                  directions: np.ndarray) -> np.ndarray:
    """Distance from ``origin`` to the first hit on the triangle mesh along
    each of ``directions`` (unit vectors, N x 3); ``inf`` where a ray misses.

    ``positions``: vertex positions (V x 3 or flat, as ``mi.traverse`` gives
    them); ``faces``: vertex indices (F x 3 or flat).
    """
    ensure_variant()
    v = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.uint32).reshape(-1, 3)
    mesh = mi.Mesh("surface_error", len(v), len(f))
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(v.ravel())
    params["faces"] = mi.UInt32(f.ravel())
    params.update()
    scene = mi.load_dict({"type": "scene", "mesh": mesh})
    d = np.asarray(directions, dtype=np.float32).reshape(-1, 3)
    o = np.broadcast_to(np.asarray(origin, dtype=np.float32), d.shape)
    ray = mi.Ray3f(mi.Point3f(*(mi.Float(o[:, k].copy()) for k in range(3))),
                   mi.Vector3f(*(mi.Float(d[:, k].copy()) for k in range(3))))
    pi = scene.ray_intersect_preliminary(ray)
    t = np.array(pi.t, dtype=np.float64)
    return np.where(np.isfinite(t), t, np.inf)


def surface_rms_error(positions: np.ndarray, faces: np.ndarray, target_positions: np.ndarray,
                      target_faces: np.ndarray, centre: Sequence[float], rays: int = 4096) -> float:
    """RMS over ``rays`` Fibonacci directions from ``centre`` of the
    difference between the distances to the first hit on the mesh and on
    the target mesh.

    Both meshes should enclose ``centre`` and be star-shaped around it
    (every ray hits them once). A ray that misses either mesh makes the
    result ``nan``: the error is not defined there.
    """
    d = fibonacci_directions(rays)
    t = hit_distances(positions, faces, centre, d)
    t_target = hit_distances(target_positions, target_faces, centre, d)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(t_target))):
        return float("nan")
    return float(np.sqrt(np.mean((t - t_target) ** 2)))
