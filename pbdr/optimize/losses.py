"""Image losses on Dr.Jit tensors (H x W x C), differentiable end to end.

The loss is a mean over pixels and channels, so its scale does not depend
on the image size and one learning rate fits tiny test images and large ones.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import PbdrError


def l1(image: mi.TensorXf, ref: mi.TensorXf) -> mi.Float:
    """Mean absolute difference over pixels and channels."""
    return dr.mean(dr.abs(image.array - ref.array))


def l2(image: mi.TensorXf, ref: mi.TensorXf) -> mi.Float:
    """Mean squared difference over pixels and channels."""
    return dr.mean(dr.square(image.array - ref.array))


def relative_l2(image: mi.TensorXf, ref: mi.TensorXf) -> mi.Float:
    """Squared error over the (detached) squared brightness: bright pixels don't dominate."""
    diff = image.array - ref.array
    return dr.mean(dr.square(diff) / (dr.square(dr.detach(image.array)) + 1e-2))


@lru_cache(maxsize=16)
def _pool_indices(h: int, w: int, c: int) -> tuple[tuple[int, int, int], list[np.ndarray]]:
    """Gather indices of the four pixels averaged into each pixel of a 2x-smaller image."""
    h2, w2 = h // 2, w // 2
    y, x, ch = np.meshgrid(np.arange(h2), np.arange(w2), np.arange(c), indexing="ij")
    out = [((2 * y + dy) * w + (2 * x + dx)) * c + ch for dy in (0, 1) for dx in (0, 1)]
    return (h2, w2, c), [o.ravel().astype(np.uint32) for o in out]


def downsample(values: mi.Float, shape: tuple[int, int, int]) -> tuple[mi.Float, tuple[int, int, int]]:
    """Average 2x2 pixel blocks of a flat H x W x C image; returns the values and their new shape."""
    new_shape, idx = _pool_indices(*shape)
    out = sum(dr.gather(mi.Float, values, mi.UInt32(i)) for i in idx)
    return out * 0.25, new_shape


def multiscale_l1(image: mi.TensorXf, ref: mi.TensorXf, levels: int = 4) -> mi.Float:
    """L1 summed over an image pyramid: coarse levels see misplaced features from afar."""
    a, b = image.array, ref.array
    shape = tuple(int(s) for s in image.shape)
    total = dr.mean(dr.abs(a - b))
    for _ in range(levels - 1):
        if min(shape[0], shape[1]) < 2:
            break
        a, new_shape = downsample(a, shape)
        b, _ = downsample(b, shape)
        shape = new_shape
        total += dr.mean(dr.abs(a - b))
    return total


def get_loss(name: str, levels: int = 4) -> Callable[[mi.TensorXf, mi.TensorXf], mi.Float]:
    """The loss function ``f(image, ref)`` of a ``[loss] type`` (``levels``: for ``multiscale_l1``)."""
    if name == "multiscale_l1":
        return lambda image, ref: multiscale_l1(image, ref, levels)
    table = {"l1": l1, "l2": l2, "relative_l2": relative_l2}
    if name not in table:
        raise PbdrError(f"unknown loss '{name}'; choose l1, l2, relative_l2 or multiscale_l1")
    return table[name]
