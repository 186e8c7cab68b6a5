"""Primal images and derivative images, as NumPy arrays (H x W x channels).

``derivative`` is forward mode: the image dI/dθ of a Perturbation.
``total_derivative`` is reverse mode: d(Σ w·I)/dθ for a weight image w (all
ones by default), the quantity an optimizer sees; it must agree with the
sum of the forward-mode image.
"""
from __future__ import annotations

from typing import Sequence

import drjit as dr
import mitsuba as mi
import numpy as np

from .errors import PbdrError
from .perturb import Perturbation
from .scene import make_integrator


def opaque_seed(seed: int) -> mi.UInt32:
    """A seed that is a kernel input, not a constant, so new seeds reuse compiled kernels."""
    if seed < 0 or seed >= 2**32:
        raise PbdrError(f"seed must be in [0, 2^32), got {seed}")
    return dr.opaque(mi.UInt32, seed)


def check_spp(scene: mi.Scene, spp: int, sensor: int = 0) -> int:
    """``spp`` if it is positive and the film's pixels times ``spp`` stay below
    2^32 samples (Mitsuba's sample index), else a PbdrError."""
    if spp <= 0:
        raise PbdrError(f"spp must be a positive integer, got {spp}")
    size = scene.sensors()[sensor].film().crop_size()
    if int(size[0]) * int(size[1]) * spp >= 2**32:
        raise PbdrError(f"{spp} spp at {size[0]}x{size[1]} is over 2^32 samples; lower --spp")
    return spp


def to_numpy(image: mi.TensorXf, what: str = "image") -> np.ndarray:
    """A float32 H x W x C copy of ``image``; a PbdrError naming ``what`` if any
    value is NaN or infinite."""
    out = np.array(image, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise PbdrError(f"{what} has {bad} non-finite values (NaN/Inf)")
    return out


def render(scene: mi.Scene, spp: int, seed: int = 0, integrator: mi.Integrator | None = None,
           sensor: int = 0) -> np.ndarray:
    """Primal image."""
    integrator = integrator or scene.integrator()
    check_spp(scene, spp, sensor)
    with dr.suspend_grad():
        image = mi.render(scene, integrator=integrator, spp=spp, seed=opaque_seed(seed), sensor=sensor)
    return to_numpy(image, "rendered image")


def derivative(scene: mi.Scene, perturbation: Perturbation, spp: int, seed: int = 0,
               integrator: mi.Integrator | None = None, sensor: int = 0) -> np.ndarray:
    """Forward-mode derivative image dI/dθ at θ = 0."""
    integrator = integrator or make_integrator(scene, differentiable=True, keys=[perturbation.key])
    check_spp(scene, spp, sensor)
    params = mi.traverse(scene)
    with perturbation.attached(params) as theta:
        # Push dθ = 1 into the parameter (and what update() derived from it);
        # the integrator then propagates from there.
        dr.forward_from(theta, flags=dr.ADFlag.ClearEdges)
        image = integrator.render_forward(scene, params, sensor=sensor, seed=opaque_seed(seed), spp=spp)
        result = to_numpy(image, "derivative image")   # evaluated before restore
    return result


def total_derivative(scene: mi.Scene, perturbation: Perturbation, spp: int, seed: int = 0,
                     integrator: mi.Integrator | None = None, weights: np.ndarray | None = None,
                     sensor: int = 0) -> float:
    """Reverse-mode d(Σ weights·I)/dθ at θ = 0."""
    integrator = integrator or make_integrator(scene, differentiable=True, keys=[perturbation.key])
    check_spp(scene, spp, sensor)
    params = mi.traverse(scene)
    film = scene.sensors()[sensor].film()
    size = film.crop_size()
    with perturbation.attached(params) as theta:
        shape = (int(size[1]), int(size[0]), film.base_channels_count())
        if weights is None:
            weights = np.ones(shape, dtype=np.float32)
        grad_in = mi.TensorXf(np.asarray(weights, dtype=np.float32).reshape(shape))
        integrator.render_backward(scene, params, grad_in, sensor=sensor, seed=opaque_seed(seed), spp=spp)
        value = float(dr.grad(theta)[0])
    if not np.isfinite(value):
        raise PbdrError("reverse-mode derivative is not finite (NaN/Inf)")
    return value


def seeds_for(count: int, first: int = 0) -> Sequence[int]:
    """``count`` consecutive seeds from ``first`` (at least one)."""
    if count < 1:
        raise PbdrError(f"need at least one seed, got {count}")
    return range(first, first + count)
