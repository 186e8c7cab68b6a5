"""One-dimensional perturbations of a scene parameter: p(θ) = p + θ·d.

Every derivative pbdr reports (``grad``, ``fd``, ``check``) is dI/dθ at θ = 0
for such a line through parameter space. The direction d is all ones (every
RGB channel, every voxel) unless the parameter is a position: then
``translate=(x, y, z)`` moves every vertex (``*.vertex_positions``) or the
whole shape (``*.to_world``) by θ·(x, y, z), and ``rotate=(x, y, z)`` turns
it by θ radians about the axis (x, y, z) through its centre (the centroid
of the vertices, or the origin of the shape's local frame for
``*.to_world``). A medium's density ``scale``, which Mitsuba keeps as a
plain float, is perturbed through its σ_t grid (``MediumScalePerturbation``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import drjit as dr
import mitsuba as mi
import numpy as np

from .errors import PbdrError
from .scene import is_float_array, resolve_key


def is_vertex_positions(key: str) -> bool:
    """Whether ``key`` names a mesh's vertex positions (``*.vertex_positions``)."""
    return key.endswith("vertex_positions")


def is_transform(value: Any) -> bool:
    """Whether a parameter value is a transform (a ``*.to_world`` key's value)."""
    return isinstance(value, (mi.Transform4f, mi.ScalarTransform4f))


@dataclass
class Perturbation:
    """A parameter ``key`` moved along ``direction`` from its value at load time."""

    key: str
    base: Any                       # detached copy of the value at θ = 0
    translate: tuple[float, float, float] | None = None
    rotate: tuple[float, float, float] | None = None    # unit axis; θ is the angle in radians
    centre: tuple[float, float, float] | None = None    # the point the axis goes through

    @staticmethod
    def of(params: mi.SceneParameters, key: str, translate: Sequence[float] | None = None,
           rotate: Sequence[float] | None = None) -> "Perturbation":
        """The perturbation of ``params[key]`` along a direction.

        Without ``translate`` and ``rotate`` the direction is all ones
        (``p + θ``). ``translate=(x, y, z)`` moves a ``*.vertex_positions``
        or ``*.to_world`` key by θ·(x, y, z); ``rotate=(x, y, z)`` turns it
        by θ radians about that axis through its centre. A medium's density
        ``*.scale`` becomes a ``MediumScalePerturbation`` (through its grid).
        Raises PbdrError for an unknown or non-differentiable key, or a
        direction that does not apply to it.
        """
        if translate is None and rotate is None:
            if MediumScalePerturbation.applies(params, key):
                return MediumScalePerturbation.of_scale(params, key)
        key = resolve_key(params, key) if not is_transform(params.get(key)) else key
        value = params[key]
        if translate is not None and rotate is not None:
            raise PbdrError("give one of --translate and --rotate, not both")
        if rotate is not None:
            axis = np.array([float(r) for r in rotate], dtype=np.float64)
            if axis.shape != (3,) or not np.all(np.isfinite(axis)) or not np.linalg.norm(axis) > 0:
                raise PbdrError(f"--rotate needs a non-zero finite axis X,Y,Z, got {tuple(rotate)}")
            if not (is_vertex_positions(key) or is_transform(value)):
                raise PbdrError(f"--rotate applies to '*.vertex_positions' or '*.to_world' keys, "
                                f"not '{key}'")
            if is_transform(value):
                centre = np.array(value.translation(), dtype=np.float64).reshape(3)
            else:
                centre = np.array(dr.detach(value), dtype=np.float64).reshape(-1, 3).mean(axis=0)
            base = type(value)(value) if is_transform(value) else dr.detach(type(value)(value))
            return Perturbation(key, base, None, tuple(float(a) for a in axis / np.linalg.norm(axis)),
                                tuple(float(c) for c in centre))
        if translate is not None:
            translate = tuple(float(t) for t in translate)
            if len(translate) != 3 or not all(np.isfinite(translate)):
                raise PbdrError(f"--translate needs three finite numbers X,Y,Z, got {translate}")
            if not (is_vertex_positions(key) or is_transform(value)):
                raise PbdrError(f"--translate applies to '*.vertex_positions' or '*.to_world' keys, "
                                f"not '{key}'")
        elif is_transform(value):
            raise PbdrError(f"'{key}' is a transform: give a direction with --translate X,Y,Z")
        base = type(value)(value) if is_transform(value) else dr.detach(type(value)(value))
        return Perturbation(key, base, translate)

    def value_at(self, theta: Any) -> Any:
        """p + θ·d for a Python float or a (differentiable) ``mi.Float`` θ."""
        base = self.base
        if self.rotate is not None:
            return self._rotated(theta)
        if is_transform(base):
            offset = mi.Vector3f(self.translate) * theta
            return mi.Transform4f().translate(offset) @ base
        if self.translate is not None:
            n = dr.width(base) // 3
            step = mi.Float(np.tile(np.array(self.translate, dtype=np.float32), n))
            return base + step * theta
        if isinstance(base, mi.TensorXf):
            return mi.TensorXf(base.array + theta, base.shape)
        return base + theta

    def _rotated(self, theta: Any) -> Any:
        """Rodrigues' rotation by θ about ``rotate`` through ``centre`` (differentiable in θ)."""
        k = self.rotate
        c, s = dr.cos(mi.Float(theta)), dr.sin(mi.Float(theta))
        K = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]]
        R = [[c * (i == j) + s * K[i][j] + (1 - c) * k[i] * k[j] for j in range(3)] for i in range(3)]
        if is_transform(self.base):
            m = mi.Matrix4f(R[0][0], R[0][1], R[0][2], 0.0, R[1][0], R[1][1], R[1][2], 0.0,
                            R[2][0], R[2][1], R[2][2], 0.0, 0.0, 0.0, 0.0, 1.0)
            centre = mi.ScalarVector3f(self.centre)
            return mi.Transform4f().translate(centre) @ mi.Transform4f(m) @ \
                mi.Transform4f().translate(-centre) @ self.base
        n = dr.width(self.base) // 3
        v = dr.unravel(mi.Point3f, self.base) - mi.ScalarVector3f(self.centre)
        rows = [R[i][0] * v.x + R[i][1] * v.y + R[i][2] * v.z + self.centre[i] for i in range(3)]
        out = dr.ravel(mi.Point3f(*rows))
        assert dr.width(out) == 3 * n
        return out

    def apply(self, params: mi.SceneParameters, theta: Any) -> None:
        """Write p(θ) into ``params`` and update the scene."""
        params[self.key] = self.value_at(theta)
        params.update()

    def restore(self, params: mi.SceneParameters) -> None:
        """Put the parameter back to its value at θ = 0."""
        # Let launched kernels finish first: update() may free buffers they
        # still read (sdfgrid rebuilds its grid; that crashed now and then).
        dr.sync_thread()
        self.apply(params, 0.0)

    @contextmanager
    def attached(self, params: mi.SceneParameters) -> Iterator[mi.Float]:
        """Apply p(θ) with θ = 0 tracking gradients; restore p on exit.

        Evaluate what depends on θ inside the block: restore() replaces the
        parameter's buffers.
        """
        theta = mi.Float(0.0)
        dr.enable_grad(theta)
        try:
            self.apply(params, theta)
            yield theta
        finally:
            self.restore(params)

    def check_step(self, eps: float) -> None:
        """Refuse a finite-difference step that leaves the parameter's domain.

        A parameter that is non-negative everywhere (reflectance, radiance,
        density, roughness) must stay so at p - eps·d; signed data (SDF
        values, positions) is not constrained.
        """
        if is_transform(self.base):
            return
        base = np.asarray(self.base.array if isinstance(self.base, mi.TensorXf) else self.base)
        if base.size and base.min() >= 0 and np.asarray(self.value_at(-eps)).min() < 0:
            if base.min() == 0:
                raise PbdrError(f"'{self.key}' has values at 0, the edge of its domain: central "
                                "differences leave it; use --fd-scheme forward")
            raise PbdrError(f"--eps {eps:g} makes '{self.key}' negative (its smallest value is "
                            f"{base.min():.4g}); use a step below that")

    def describe(self) -> str:
        """One line saying what θ does, e.g. ``red.reflectance.value + θ·1``."""
        if self.rotate is not None:
            return f"{self.key} rotated by θ rad about axis {self.rotate} through {self.centre}"
        if self.translate is not None:
            return f"{self.key} translated by θ·{self.translate}"
        return f"{self.key} + θ·1"


@dataclass
class MediumScalePerturbation(Perturbation):
    """``<medium>.scale + θ`` for a medium whose extinction is ``scale · σ_t(x)``.

    Mitsuba keeps ``scale`` a Python float, outside the AD graph. Since
    ``(scale + θ)·v = scale·(v + θ·v/scale)``, a differentiable θ moves the
    σ_t volume's own parameter (``sigma_t.data`` of a grid, ``sigma_t.value.value``
    of a constant) along ``v/scale`` and leaves ``scale`` alone, while a float θ
    (finite differences) sets ``scale`` itself: the two meet only in the
    rendered images, so a check compares two routes to the same derivative.
    """

    scale: float = 1.0
    target: str = ""                # the σ_t volume's differentiable key
    target_base: Any = None

    @staticmethod
    def applies(params: mi.SceneParameters, key: str) -> bool:
        """Whether ``key`` is a medium's float ``scale`` beside a differentiable σ_t."""
        return (key in params and key.endswith(".scale") and isinstance(params[key], float)
                and bool(MediumScalePerturbation.sigma_t_keys(params, key)))

    @staticmethod
    def sigma_t_keys(params: mi.SceneParameters, key: str) -> list[str]:
        """The differentiable σ_t parameters of the medium whose ``scale`` is ``key``."""
        prefix = key[:-len("scale")] + "sigma_t."
        return [k for k in params.keys() if k.startswith(prefix) and is_float_array(params[k])]

    @staticmethod
    def of_scale(params: mi.SceneParameters, key: str) -> "MediumScalePerturbation":
        """The perturbation of the medium's ``scale`` (``key``) through its one σ_t parameter."""
        targets = MediumScalePerturbation.sigma_t_keys(params, key)
        if len(targets) != 1:
            raise PbdrError(f"'{key}': expected one differentiable σ_t parameter beside it, found {targets}")
        scale = float(params[key])
        if not scale > 0:
            raise PbdrError(f"'{key}' is {scale:g}; a scale derivative needs scale > 0 "
                            f"(perturb '{targets[0]}' instead)")
        value = params[targets[0]]
        return MediumScalePerturbation(key, scale, scale=scale, target=targets[0],
                                       target_base=dr.detach(type(value)(value)))

    def value_at(self, theta: Any) -> Any:
        """σ_t's parameter at scale + θ, expressed at the unchanged scale."""
        base = self.target_base
        factor = 1.0 + theta / self.scale
        if isinstance(base, mi.TensorXf):
            return mi.TensorXf(base.array * factor, base.shape)
        return base * factor

    def apply(self, params: mi.SceneParameters, theta: Any) -> None:
        """A float θ sets ``scale`` itself (finite differences); an attached θ moves σ_t."""
        if isinstance(theta, (int, float)):
            params[self.key] = self.scale + float(theta)
            params[self.target] = type(self.target_base)(self.target_base)
        else:
            params[self.key] = self.scale
            params[self.target] = self.value_at(theta)
        params.update()

    def check_step(self, eps: float) -> None:
        """Refuse a step that makes ``scale`` negative."""
        if self.scale - eps < 0:
            raise PbdrError(f"--eps {eps:g} makes '{self.key}' negative (it is {self.scale:g}); "
                            "use a step below that")

    def describe(self) -> str:
        """One line saying what θ does."""
        return f"{self.key} + θ (σ_t = scale·{self.target.rsplit('.', 1)[0]})"
