"""Voxel grids for participating media (``gridvolume`` sigma_t / albedo).

Arrays are NumPy ``(Z, Y, X)`` or ``(Z, Y, X, C)`` float32, the layout of
Mitsuba's ``.vol`` files and of ``mi.VolumeGrid``. ``gridvolume`` reads them
cell-centred on [0, 1]^3 (voxel ``i`` of ``n`` sits at ``(i + 0.5) / n``) and
interpolates trilinearly, clamping at the border; ``resample`` uses the same
convention, so a resampled grid describes the same continuous field.

- ``blob``/``blobs``: analytic Gaussian densities (with an optional floor),
- ``write_vol``/``read_vol``: ``.vol`` files through ``mi.VolumeGrid``,
- ``resample``: trilinear resampling to a new resolution (coarse-to-fine),
- ``VoxelPerturbation``: a ``Perturbation`` along any direction of a grid's
  ``.data`` (for instance one voxel), for derivative checks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import PbdrError
from ..perturb import Perturbation
from ..scene import resolve_key
from ..variant import ensure_variant


def as_grid_array(values: np.ndarray) -> np.ndarray:
    """``values`` as a float32 (Z, Y, X, C) array; raises PbdrError otherwise."""
    a = np.asarray(values, dtype=np.float32)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or min(a.shape) < 1:
        raise PbdrError(f"a voxel grid is (Z, Y, X) or (Z, Y, X, C), got shape {np.shape(values)}")
    if not np.all(np.isfinite(a)):
        raise PbdrError("a voxel grid must hold finite values")
    return np.ascontiguousarray(a)


def cell_centers(res: int) -> np.ndarray:
    return (np.arange(res, dtype=np.float64) + 0.5) / res


def blob(res: int | Sequence[int], center: Sequence[float] = (0.5, 0.5, 0.5),
         radius: float = 0.25, amplitude: float = 1.0) -> np.ndarray:
    """One Gaussian ``amplitude·exp(-|p - center|² / (2 radius²))`` on [0,1]^3, (Z, Y, X)."""
    rz, ry, rx = (res, res, res) if np.isscalar(res) else tuple(res)
    z, y, x = np.meshgrid(cell_centers(rz), cell_centers(ry), cell_centers(rx), indexing="ij")
    cx, cy, cz = center
    d2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
    return (amplitude * np.exp(-d2 / (2.0 * radius ** 2))).astype(np.float32)


def blobs(res: int | Sequence[int], specs: Sequence[tuple[Sequence[float], float, float]],
          floor: float = 0.0) -> np.ndarray:
    """A sum of Gaussian blobs ``[(center xyz, radius, amplitude), ...]`` plus a constant floor."""
    out = np.full(blob(res, radius=1.0).shape, floor, dtype=np.float32)
    for center, radius, amplitude in specs:
        out += blob(res, center, radius, amplitude)
    return out


def to_volume_grid(values: np.ndarray) -> mi.VolumeGrid:
    ensure_variant()
    return mi.VolumeGrid(as_grid_array(values))


def write_vol(path: str | os.PathLike, values: np.ndarray) -> None:
    """Write a (Z, Y, X[, C]) array as a Mitsuba ``.vol`` file."""
    to_volume_grid(values).write(os.fspath(path))


def read_vol(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.vol`` file as a float32 (Z, Y, X, C) array."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PbdrError(f"volume file not found: {path}")
    ensure_variant()
    try:
        grid = mi.VolumeGrid(path)
        a = np.array(grid, dtype=np.float32)
    except Exception as exc:
        raise PbdrError(f"cannot read volume {path}: {exc}") from None
    return a.reshape(a.shape[:3] + (grid.channel_count(),))


def linear_axis(a: np.ndarray, axis: int, n_new: int) -> np.ndarray:
    """Resample one axis, cell-centred, clamping at the border (gridvolume's lookup)."""
    n_old = a.shape[axis]
    x = cell_centers(n_new) * n_old - 0.5            # positions in old texel units
    x = np.clip(x, 0.0, n_old - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_old - 1)
    w = (x - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n_new
    w = w.reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i1, axis=axis) * w


def resample(values: np.ndarray, res: int | Sequence[int]) -> np.ndarray:
    """Trilinear resampling of a (Z, Y, X[, C]) grid to ``res`` (int or (Z, Y, X))."""
    squeeze = np.ndim(values) == 3
    a = as_grid_array(values)
    new = (res, res, res) if np.isscalar(res) else tuple(int(r) for r in res)
    if len(new) != 3 or min(new) < 1:
        raise PbdrError(f"resample needs a positive resolution (Z, Y, X), got {res}")
    for axis, n in enumerate(new):
        a = linear_axis(a, axis, n)
    a = a.astype(np.float32)
    return a[..., 0] if squeeze else a


@dataclass
class VoxelPerturbation(Perturbation):
    """``data + θ·direction`` for a grid parameter's ``.data`` (any direction, e.g. one voxel)."""

    direction: np.ndarray | None = None

    @staticmethod
    def of_direction(params: mi.SceneParameters, key: str,
                     direction: np.ndarray) -> "VoxelPerturbation":
        key = resolve_key(params, key)
        value = params[key]
        if not isinstance(value, mi.TensorXf):
            raise PbdrError(f"'{key}' is not a voxel grid (TensorXf)")
        d = np.asarray(direction, dtype=np.float32)
        if d.size != dr.width(value.array):
            raise PbdrError(f"direction has {d.size} values, '{key}' has {dr.width(value.array)}")
        return VoxelPerturbation(key, dr.detach(mi.TensorXf(value)), direction=d.reshape(-1))

    @staticmethod
    def voxel(params: mi.SceneParameters, key: str, index: Sequence[int]) -> "VoxelPerturbation":
        """Move voxel ``index`` = (z, y, x[, c]) only (every channel when c is omitted)."""
        shape = tuple(params[resolve_key(params, key)].shape)
        d = np.zeros(shape, dtype=np.float32)
        d[tuple(index)] = 1.0
        return VoxelPerturbation.of_direction(params, key, d)

    def value_at(self, theta):
        base = self.base
        return mi.TensorXf(base.array + mi.Float(self.direction) * theta, base.shape)

    def describe(self) -> str:
        nz = np.flatnonzero(self.direction)
        where = f"voxel {np.unravel_index(nz[0], self.base.shape)}" if nz.size == 1 else f"{nz.size} voxels"
        return f"{self.key} + θ·d ({where})"
