"""Regenerate the grids of the volume scenes: ``python scenes/volume/make_grids.py``.

density.vol (16^3, 1 channel): two Gaussian puffs over a thin haze floor, so
that sigma_t > 0 in the whole box (see integrators/volume.py on empty voxels).
albedo.vol (16^3, 3 channels): a smooth colour gradient in [0.5, 0.9].
smoke_box.vol (16^3): smoke clipped at its maximum density, as simulated smoke
normalised to [0, 1] is; a third of the voxels sit at the maximum (the
majorant), where delta tracking with the plain majorant samples no null
collisions (smoke_box.xml).
uniform.vol (16^3): a constant grid, the usual starting point of a density
recovery (``smoke_box.xml -D density=uniform.vol``).
recover/truth.vol, recover/init.vol (16^3): the density to recover (two puffs
of different size over a thin haze) and the uniform start (recover/config.toml).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import pbdr
from pbdr.geometry import voxels

HERE = Path(__file__).resolve().parent
RES = 16


def density() -> np.ndarray:
    return voxels.blobs(RES, [((0.4, 0.45, 0.5), 0.18, 1.0), ((0.65, 0.6, 0.4), 0.12, 0.7)], floor=0.05)


def smoke_box() -> np.ndarray:
    return np.minimum(1.0, 3.0 * voxels.blobs(RES, [((0.5, 0.45, 0.5), 0.25, 1.0)], floor=0.1))


def uniform() -> np.ndarray:
    return np.ones((RES, RES, RES), dtype=np.float32)


def recover_truth() -> np.ndarray:
    return voxels.blobs(RES, [((0.38, 0.4, 0.45), 0.17, 1.0), ((0.68, 0.64, 0.55), 0.11, 0.8)], floor=0.02)


def recover_init() -> np.ndarray:
    return np.full((RES, RES, RES), 0.1, dtype=np.float32)


def albedo() -> np.ndarray:
    x = voxels.cell_centers(RES)
    zz, yy, xx = np.meshgrid(x, x, x, indexing="ij")
    rgb = np.stack([0.9 - 0.3 * yy, 0.6 + 0.2 * xx, 0.5 + 0.4 * zz], axis=-1)
    return rgb.astype(np.float32)


if __name__ == "__main__":
    pbdr.set_variant(None)
    voxels.write_vol(HERE / "density.vol", density())
    voxels.write_vol(HERE / "albedo.vol", albedo())
    voxels.write_vol(HERE / "smoke_box.vol", smoke_box())
    voxels.write_vol(HERE / "uniform.vol", uniform())
    voxels.write_vol(HERE / "recover" / "truth.vol", recover_truth())
    voxels.write_vol(HERE / "recover" / "init.vol", recover_init())
    print("wrote density.vol, albedo.vol, smoke_box.vol, uniform.vol in", HERE)
