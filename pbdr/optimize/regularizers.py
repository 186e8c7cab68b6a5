"""Priors that keep free parameters well behaved while the image loss moves them.

- ``laplacian``: for free ``*.vertex_positions``, the mean squared uniform
  Laplacian (each vertex minus the mean of its neighbours). Without it,
  per-vertex gradients from a handful of pixels crumple the mesh.
  (Mitsuba's ``mi.ad.LargeSteps`` is the stronger alternative; it needs the
  ``cholespy`` package.)
- ``tv``: total variation of a grid (``TensorXf`` of shape Z, Y, X[, C]),
  the mean absolute difference of neighbouring voxels: piecewise-smooth
  volumes and SDFs instead of noise.
"""
from __future__ import annotations

from typing import Any, Callable

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import PbdrError
from ..geometry.edges import weld
from ..scene import faces_key
from .config import RegularizerSpec


def representatives(positions: np.ndarray) -> np.ndarray:
    """Index of the first vertex at the same position, for every vertex.

    Built-in shapes split vertices per face (a cube has 24); the Laplacian
    must see one vertex per position or it would pull a face's copy only
    towards its own face. Positions are welded as the edge tables weld them.
    """
    ids = weld(positions)
    _, first = np.unique(ids, return_index=True)
    return first[ids]


def laplacian(params: mi.SceneParameters, key: str, weight: float) -> Callable[[Any], mi.Float]:
    """``weight`` times the mean squared uniform Laplacian of the mesh whose
    ``*.vertex_positions`` is ``key`` (vertices welded by position), as a
    function of the flat vertex positions."""
    if not key.endswith("vertex_positions"):
        raise PbdrError(f"[[regularizer]] laplacian applies to '*.vertex_positions', not '{key}'")
    fkey = faces_key(params, key, "[[regularizer]] laplacian")
    verts = np.array(params[key]).reshape(-1, 3)
    rep = representatives(verts)
    faces = rep[np.array(params[fkey]).reshape(-1, 3)]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0)
    edges = edges[edges[:, 0] != edges[:, 1]]
    used = np.unique(edges[:, 0])
    degree = np.bincount(edges[:, 0], minlength=len(verts)).astype(np.float32)
    src, dst = mi.UInt32(edges[:, 1]), mi.UInt32(edges[:, 0])
    used_idx, inv_deg = mi.UInt32(used), mi.Float(1.0 / degree[used])
    n = len(verts)

    def term(flat: Any) -> mi.Float:
        p = dr.unravel(mi.Point3f, flat)
        total = dr.zeros(mi.Point3f, n)
        dr.scatter_reduce(dr.ReduceOp.Add, total, dr.gather(mi.Point3f, p, src), dst)
        lap = dr.gather(mi.Point3f, p, used_idx) - dr.gather(mi.Point3f, total, used_idx) * inv_deg
        return weight * dr.mean(dr.squared_norm(lap))

    return term


def total_variation(params: mi.SceneParameters, key: str, weight: float) -> Callable[[Any], mi.Float]:
    """``weight`` times the total variation of the grid ``key`` (Z, Y, X[, C]):
    the mean absolute difference of neighbouring voxels along each axis, as a
    function of the grid tensor."""
    value = params[key]
    if not isinstance(value, mi.TensorXf) or len(value.shape) < 3:
        raise PbdrError(f"[[regularizer]] tv applies to grids (Z, Y, X[, C] tensors), not '{key}'")
    shape = tuple(int(s) for s in value.shape)
    index = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
    pairs = []
    for axis in range(3):
        a = np.take(index, range(0, shape[axis] - 1), axis=axis).ravel()
        b = np.take(index, range(1, shape[axis]), axis=axis).ravel()
        if a.size:
            pairs.append((mi.UInt32(a), mi.UInt32(b)))

    def term(grid: Any) -> mi.Float:
        arr = grid.array
        total = mi.Float(0.0)
        for a, b in pairs:
            total += dr.mean(dr.abs(dr.gather(mi.Float, arr, a) - dr.gather(mi.Float, arr, b)))
        return weight * total

    return term


def make_regularizer(params: mi.SceneParameters, spec: RegularizerSpec) -> Callable[[Any], mi.Float]:
    """A function of the parameter's scene value that returns a scalar penalty."""
    if spec.key not in params:
        raise PbdrError(f"[[regularizer]] unknown parameter '{spec.key}'")
    if spec.type == "laplacian":
        return laplacian(params, spec.key, spec.weight)
    return total_variation(params, spec.key, spec.weight)
