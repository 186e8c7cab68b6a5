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
of different size over a thin haze) and the uniform start (recover/config.toml);
recover_sparse/: the same puffs with no haze, half of the voxels exactly 0.

Sparse grids, for empty space (sigma_t exactly 0 over part of the box), with
their scenes written by ``pbdr grid scene``'s :func:`write_smoke_scene`:
sparse_50.vol (24^3): smoke blobs with no haze, the smallest half of the
values cut to exactly 0 (``max(d - median, 0)``, so the field stays
continuous); sparse_00.vol and sparse_99.vol: the same blobs with none and
99% of the voxels exactly 0. sparse_albedo.vol (24^3, 3 channels): exactly 0
for x < 0.2 (21% of the voxels), exactly 1 for x > 0.5 (50%), a warm ramp
between. sparse_smoke.xml reads them, lit by an area light and
a constant environment (``-D density=sparse_00.vol`` / ``sparse_99.vol``).
slab_density.vol (16^3): two dense puffs separated by a slab of 6 empty
z-layers (z = 5..10, 37.5% of the voxels); slab_smoke.xml reads it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import pbdr
from pbdr.geometry import voxels
from pbdr.geometry.grid_cli import write_smoke_scene

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


def recover_sparse_truth() -> np.ndarray:
    """recover_truth's puffs with no haze and half of the voxels exactly 0 (as ``sparse``)."""
    d = voxels.blobs(RES, [((0.38, 0.4, 0.45), 0.17, 1.0), ((0.68, 0.64, 0.55), 0.11, 0.8)], floor=0.0)
    d = np.maximum(d - np.quantile(d, 0.5), 0.0)
    return (d / d.max()).astype(np.float32)


def recover_init() -> np.ndarray:
    return np.full((RES, RES, RES), 0.1, dtype=np.float32)


def albedo() -> np.ndarray:
    x = voxels.cell_centers(RES)
    zz, yy, xx = np.meshgrid(x, x, x, indexing="ij")
    rgb = np.stack([0.9 - 0.3 * yy, 0.6 + 0.2 * xx, 0.5 + 0.4 * zz], axis=-1)
    return rgb.astype(np.float32)


SPARSE_RES = 24
SPARSE_FRACTIONS = {"sparse_00.vol": 0.0, "sparse_50.vol": 0.5, "sparse_99.vol": 0.99}
SLAB_LAYERS = (5, 11)          # z-layers [5, 11) of slab_density.vol are empty
SKY = (0.04, 0.06, 0.1)        # the constant environment of sparse_smoke.xml


def sparse_blobs() -> np.ndarray:
    """Three puffs with no haze floor (every value > 0, tiny far out)."""
    return voxels.blobs(SPARSE_RES, [((0.38, 0.42, 0.5), 0.14, 1.0), ((0.65, 0.55, 0.42), 0.11, 0.8),
                                     ((0.5, 0.72, 0.62), 0.09, 0.6)], floor=0.0)


def sparse(empty_fraction: float) -> np.ndarray:
    """``sparse_blobs`` with the smallest ``empty_fraction`` of the voxels exactly 0:
    ``max(d - t, 0)`` with ``t`` that quantile (continuous, no step at the cut),
    scaled to a maximum of 1."""
    d = sparse_blobs().astype(np.float64)
    t = np.quantile(d, empty_fraction) if empty_fraction > 0 else 0.0
    out = np.maximum(d - t, 0.0) if empty_fraction > 0 else d
    return (out / out.max()).astype(np.float32)


def sparse_albedo() -> np.ndarray:
    """3 channels: exactly 0 for x < 0.2 (5 of 24 columns), exactly 1 for x > 0.5
    (12 of 24), a ramp between (the channels are s, s^1.2, s^1.5 of the ramp s,
    so 0 and 1 stay exact)."""
    x = voxels.cell_centers(SPARSE_RES)
    s = np.clip((x - 0.2) / 0.3, 0.0, 1.0)
    s = np.broadcast_to(s, (SPARSE_RES, SPARSE_RES, SPARSE_RES))
    return np.stack([s, s ** 1.2, s ** 1.5], axis=-1).astype(np.float32)


def slab() -> np.ndarray:
    """Two dense puffs (front and back, over a thin haze) with z-layers
    ``SLAB_LAYERS`` exactly 0 between them."""
    d = voxels.blobs(RES, [((0.45, 0.45, 0.17), 0.16, 1.0), ((0.55, 0.5, 0.83), 0.16, 1.0)], floor=0.05)
    d[SLAB_LAYERS[0]:SLAB_LAYERS[1]] = 0.0
    return d


def write_sparse_scenes() -> None:
    write_smoke_scene(HERE / "sparse_smoke.xml", sparse(0.5), sparse_albedo(), density_file="sparse_50.vol",
                      albedo_file="sparse_albedo.vol", force=True, env=SKY, res=64,
                      comment="Sparse smoke (make_grids.py): three puffs with no haze, half of the\n"
                           "voxels exactly 0; -D density=sparse_00.vol / sparse_99.vol for 0% / 99%\n"
                           "empty. The albedo is exactly 0 for x < 0.2 and exactly 1 for x > 0.5.")
    for name, fraction in SPARSE_FRACTIONS.items():
        voxels.write_vol(HERE / name, sparse(fraction))
    write_smoke_scene(HERE / "slab_smoke.xml", slab(), 0.9, density_file="slab_density.vol", force=True,
                      res=64,
                      comment="Slab smoke (make_grids.py): two dense puffs over a thin haze, and between\n"
                           "them z-layers 5..10 of 16 exactly 0 (an empty slab, 37.5% of the voxels).")


if __name__ == "__main__":
    pbdr.set_variant(None)
    voxels.write_vol(HERE / "density.vol", density())
    voxels.write_vol(HERE / "albedo.vol", albedo())
    voxels.write_vol(HERE / "smoke_box.vol", smoke_box())
    voxels.write_vol(HERE / "uniform.vol", uniform())
    voxels.write_vol(HERE / "recover" / "truth.vol", recover_truth())
    voxels.write_vol(HERE / "recover" / "init.vol", recover_init())
    voxels.write_vol(HERE / "recover_sparse" / "truth.vol", recover_sparse_truth())
    voxels.write_vol(HERE / "recover_sparse" / "init.vol", recover_init())
    write_sparse_scenes()
    print("wrote density.vol, albedo.vol, smoke_box.vol, uniform.vol, sparse_{00,50,99}.vol, "
          "sparse_albedo.vol, sparse_smoke.xml, slab_density.vol, slab_smoke.xml in", HERE)
