"""Gradients of a loss of the rendered image, for writing optimization loops.

:func:`gradient` is the reverse-mode counterpart of :func:`pbdr.derivative`:
one call renders the image, evaluates ``loss(image)`` and returns
d loss / d p for every named parameter, at the parameters' current values.
Set a value with ``params = mi.traverse(scene); params[key] = ...;
params.update()`` before calling it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import drjit as dr
import mitsuba as mi
import numpy as np

from .errors import PbdrError
from .render import check_spp, opaque_seed
from .scene import make_integrator, resolve_key


def gradient(scene: mi.Scene, loss: Callable[[mi.TensorXf], mi.Float], keys: Sequence[str],
             spp: int = 64, seed: int = 0, integrator: mi.Integrator | None = None,
             sensor: int = 0) -> dict[str, np.ndarray]:
    """d loss(I) / d p for each parameter ``p`` in ``keys`` (``mi.traverse`` keys).

    ``loss`` maps the rendered image (an ``mi.TensorXf``, H x W x C) to a
    differentiable scalar (``mi.Float`` of width 1), e.g.
    ``lambda image: dr.mean(dr.square(image - target), axis=None)``. The
    image is rendered with ``seed`` and its derivative with ``seed + 1``
    (decorrelated, as ``mi.render``'s ``seed_grad`` asks). ``integrator``
    defaults to the one ``--integrator auto`` picks for ``keys``.

    Returns a dict ``key -> gradient``: flat float64 NumPy arrays, one entry
    per value of the parameter in Dr.Jit's order (``[x0, y0, z0, x1, ...]``
    for vertex positions, ``[r, g, b]`` for a colour). Raises :class:`pbdr.PbdrError` for an unknown key or a
    non-finite gradient. The scene's parameters are left as they were.
    """
    if not keys:
        raise PbdrError("gradient() needs at least one parameter key")
    params = mi.traverse(scene)
    keys = [resolve_key(params, k) for k in keys]
    integrator = integrator or make_integrator(scene, differentiable=True, keys=keys)
    check_spp(scene, spp, sensor)
    if seed < 0 or seed + 1 >= 2**32:
        raise PbdrError(f"seed must be in [0, 2^32 - 1), got {seed}")
    try:
        for key in keys:
            dr.enable_grad(params[key])
        params.update()
        image = mi.render(scene, params, integrator=integrator, spp=spp, sensor=sensor,
                          seed=opaque_seed(seed), seed_grad=opaque_seed(seed + 1))
        value = loss(image)
        if not (dr.is_array_v(value) and dr.width(value) == 1):
            raise PbdrError("loss(image) must return a scalar Dr.Jit value (width 1), "
                            f"got {type(value).__name__}")
        dr.backward(value)
        grads = {key: np.array(dr.grad(params[key]), dtype=np.float64).ravel() for key in keys}
    finally:
        for key in keys:
            dr.disable_grad(params[key])
        params.update()
    for key, g in grads.items():
        if not np.all(np.isfinite(g)):
            raise PbdrError(f"gradient of '{key}' has {int(np.count_nonzero(~np.isfinite(g)))} "
                            "non-finite values (NaN/Inf)")
    return grads
