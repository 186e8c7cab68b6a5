"""Differentiable evaluation of ``sdfgrid`` shapes, for boundary estimators.

Mitsuba's ``sdfgrid`` interpolates ``grid[z, y, x]`` trilinearly between
samples at the corners ``i / (N - 1)`` of the unit cube that ``to_world``
maps into the scene (see ``pbdr.geometry.sdf``). This module evaluates the
same function with Dr.Jit, attached to the *current* (possibly
AD-tracked) ``grid`` and ``to_world``:

    F(p) = φ(to_world⁻¹ p)        (world point p, signed, grid units)

and builds the point that a surface point ``p`` becomes when the shape
moves: rigidly with ``to_world`` and along the normal with the grid values
(the implicit-function derivative):

    p' = T(θ) T(θ₀)⁻¹ p - ∇F · (φ(u; θ) - φ(u; θ₀)) / |∇F|²,   u = T(θ₀)⁻¹ p

(``T`` = ``to_world``; ∇F detached, φ attached to the grid). At θ₀, p' = p.
Both parts move the surface with its true normal velocity, but they differ
tangentially, and that matters to a warp field built from the motion of
nearby points (``pbdr_reparam``): the rigid motion of a translated sphere is
the same everywhere, while its normal part (v·n) n turns with n, so seen from
a point it changes like the square root of the depth below the silhouette,
and a vMF-blended field misses the silhouette's own velocity (the shadow of a
sphere moving *towards* the light: 0.4x FD with the normal motion).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi


@dataclass
class SDFField:
    shape: mi.Shape
    grid: mi.TensorXf              # (Z, Y, X, 1), attached if it is being differentiated
    to_world: mi.AffineTransform4f  # attached likewise
    to_local0: mi.AffineTransform4f = field(init=False)   # to_world⁻¹ at θ₀ (detached)

    def __post_init__(self) -> None:
        # Once per field, not per lookup: moved() runs for every auxiliary ray.
        self.to_local0 = mi.AffineTransform4f(dr.detach(self.to_world.matrix)).inverse()

    @staticmethod
    def of(shape: mi.Shape) -> "SDFField":
        p = mi.traverse(shape)
        return SDFField(shape, p["grid"], p["to_world"])

    def local_value_and_grad(self, u: mi.Point3f) -> tuple[mi.Float, mi.Vector3f]:
        """φ(u) and ∇_u φ(u) for a point u of the unit cube (trilinear, corner samples)."""
        nz, ny, nx = (int(s) for s in self.grid.shape[:3])
        res = mi.Vector3f(nx - 1, ny - 1, nz - 1)
        x = u * res
        i0 = mi.Vector3i(dr.clip(dr.floor(x), 0, res - 1))
        f = x - mi.Vector3f(i0)
        values = self.grid.array

        def at(dx: int, dy: int, dz: int) -> mi.Float:
            idx = ((i0.z + dz) * ny + (i0.y + dy)) * nx + (i0.x + dx)
            return dr.gather(mi.Float, values, mi.UInt32(idx))

        c = {(a, b, e): at(a, b, e) for a in (0, 1) for b in (0, 1) for e in (0, 1)}
        fx, fy, fz = f.x, f.y, f.z
        # Interpolate along x, then y, then z; the gradient from the same corners.
        c00 = dr.lerp(c[0, 0, 0], c[1, 0, 0], fx)
        c10 = dr.lerp(c[0, 1, 0], c[1, 1, 0], fx)
        c01 = dr.lerp(c[0, 0, 1], c[1, 0, 1], fx)
        c11 = dr.lerp(c[0, 1, 1], c[1, 1, 1], fx)
        c0 = dr.lerp(c00, c10, fy)
        c1 = dr.lerp(c01, c11, fy)
        value = dr.lerp(c0, c1, fz)
        dx0 = dr.lerp(c[1, 0, 0] - c[0, 0, 0], c[1, 1, 0] - c[0, 1, 0], fy)
        dx1 = dr.lerp(c[1, 0, 1] - c[0, 0, 1], c[1, 1, 1] - c[0, 1, 1], fy)
        grad = mi.Vector3f(dr.lerp(dx0, dx1, fz) * res.x,
                           dr.lerp(c10 - c00, c11 - c01, fz) * res.y,
                           (c1 - c0) * res.z)
        return value, grad

    def moved(self, p: mi.Point3f) -> tuple[mi.Point3f, mi.Vector3f]:
        """The surface point p moved with the shape (attached): rigidly with
        ``to_world``, along the normal with the grid values; and the world
        gradient ∇F at p (detached)."""
        p = mi.Point3f(dr.detach(p))       # a Vector3f would lose the translation
        u = self.to_local0 @ p
        value, g_local = self.local_value_and_grad(u)     # attached to the grid only
        with dr.suspend_grad():
            # ∇_p F = (∂u/∂p)ᵀ ∇_u φ, with ∂u/∂p the linear part of to_world⁻¹.
            gl, m = dr.detach(g_local), self.to_local0.matrix
            g = mi.Vector3f(m[0][0] * gl.x + m[1][0] * gl.y + m[2][0] * gl.z,
                            m[0][1] * gl.x + m[1][1] * gl.y + m[2][1] * gl.z,
                            m[0][2] * gl.x + m[1][2] * gl.y + m[2][2] * gl.z)
        scale = dr.rcp(dr.maximum(dr.squared_norm(g), 1e-12))
        return self.to_world @ u - g * (value - dr.detach(value)) * scale, g
