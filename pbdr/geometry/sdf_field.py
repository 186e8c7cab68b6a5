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
    to_local: mi.AffineTransform4f = field(init=False)    # to_world⁻¹ (attached)
    samples: tuple[int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        # Once per field, not per lookup: moved() runs for every auxiliary ray.
        self.to_local0 = mi.AffineTransform4f(dr.detach(self.to_world.matrix)).inverse()
        self.to_local = self.to_world.inverse()    # attached, for shading normals
        nz, ny, nx = (int(s) for s in self.grid.shape[:3])
        self.samples = (nx, ny, nz)                # grid samples per axis, x first

    @staticmethod
    def of(shape: mi.Shape) -> "SDFField":
        p = mi.traverse(shape)
        return SDFField(shape, p["grid"], p["to_world"])

    def local_value_and_grad(self, u: mi.Point3f) -> tuple[mi.Float, mi.Vector3f]:
        """φ(u) and ∇_u φ(u) for a point u of the unit cube (trilinear, corner samples)."""
        nx, ny, nz = self.samples
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

    def world_gradient(self, g_local: mi.Vector3f) -> mi.Vector3f:
        """∇_p F = (∂u/∂p)ᵀ ∇_u φ, ∂u/∂p the linear part of to_world⁻¹ at θ₀."""
        m = self.to_local0.matrix
        return mi.Vector3f(m[0][0] * g_local.x + m[1][0] * g_local.y + m[2][0] * g_local.z,
                           m[0][1] * g_local.x + m[1][1] * g_local.y + m[2][1] * g_local.z,
                           m[0][2] * g_local.x + m[1][2] * g_local.y + m[2][2] * g_local.z)

    def local_value(self, u: mi.Point3f) -> mi.Float:
        return self.local_value_and_grad(u)[0]

    def shading_normal(self, p: mi.Point3f) -> mi.Normal3f:
        """Mitsuba's ``smooth`` shading normal at the world point p, attached to
        p, the grid and ``to_world`` (Mitsuba's own is attached to ``to_world``
        only: a shading point that slides over the surface, or a grid that
        changes, would keep its normal).

        Hansson-Söderlund et al. 2022, as ``sdfgrid`` computes it: the
        normalized finite-difference gradients of the 2x2x2 voxels around the
        grid corner nearest to p, blended trilinearly.
        """
        nx, ny, nz = self.samples
        res = mi.Vector3f(nx - 1, ny - 1, nz - 1)
        vs = dr.rcp(res)
        u = self.to_local @ mi.Point3f(p)
        x = u * res
        base = mi.Vector3i(dr.round(dr.detach(x))) - 1
        # A voxel's x difference depends on its x index only (its lookups sit
        # at u.y, u.z), and so on: 3 planes per axis serve all 8 voxels.
        planes = [mi.Vector3f(base + j) * vs for j in (0, 1, 2)]
        at_x = [self.local_value(mi.Point3f(lo.x, u.y, u.z)) for lo in planes]
        at_y = [self.local_value(mi.Point3f(u.x, lo.y, u.z)) for lo in planes]
        at_z = [self.local_value(mi.Point3f(u.x, u.y, lo.z)) for lo in planes]
        t = x - mi.Vector3f(base + 1) + 0.5   # trilinear weights about the corner base + 1
        n = mi.Vector3f(0.0)
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    g = mi.Vector3f(at_x[dx + 1] - at_x[dx], at_y[dy + 1] - at_y[dy],
                                    at_z[dz + 1] - at_z[dz]) * res
                    inside = dr.all(base + mi.Vector3i(dx, dy, dz) >= 0)
                    w = (dr.select(dx == 1, t.x, 1.0 - t.x) * dr.select(dy == 1, t.y, 1.0 - t.y)
                         * dr.select(dz == 1, t.z, 1.0 - t.z))
                    n += dr.select(inside, w * dr.normalize(g), 0.0)
        return dr.normalize(self.to_world @ mi.Normal3f(n))

    def silhouette_angle(self, p: mi.Point3f, o: mi.Point3f, d: mi.Vector3f) -> mi.Float:
        """Angular distance (as seen from o) from the ray (o, d), which hits the
        surface at p, to the silhouette it would graze if moved sideways
        (detached; +inf where the surface does not curve away from the ray).

        Along the ray F(τ) ≈ a τ + k τ²/2 (second differences two voxels
        apart): the ray dips a²/(2k) below the surface (in F units, |∇F|
        per unit of length) and leaves it when moved by that depth, seen
        at distance |p - o|. A sphere of radius r seen at distance t gives
        r (n·d)² / (2t), as the geometry says.
        """
        with dr.suspend_grad():
            p, d = mi.Point3f(dr.detach(p)), mi.Vector3f(dr.detach(d))
            u, d_local = self.to_local0 @ p, self.to_local0 @ d
            voxel = 1.0 / (max(self.samples) - 1)
            s = 2.0 * voxel * dr.rsqrt(dr.maximum(dr.squared_norm(d_local), 1e-30))   # world step
            f0, g_local = self.local_value_and_grad(u)
            f_plus = self.local_value(u + s * d_local)
            f_minus = self.local_value(u - s * d_local)
            a = (f_plus - f_minus) / (2.0 * s)
            k = (f_plus - 2.0 * f0 + f_minus) / dr.square(s)
            g = self.world_gradient(g_local)
            depth = dr.square(a) / (2.0 * k * dr.maximum(dr.norm(g), 1e-12))
            return dr.select(k > 0, depth / dr.norm(p - o), dr.inf)

    def moved(self, p: mi.Point3f) -> tuple[mi.Point3f, mi.Vector3f]:
        """The surface point p moved with the shape (attached): rigidly with
        ``to_world``, along the normal with the grid values; and the world
        gradient ∇F at p (detached)."""
        p = mi.Point3f(dr.detach(p))       # a Vector3f would lose the translation
        u = self.to_local0 @ p
        value, g_local = self.local_value_and_grad(u)     # attached to the grid only
        with dr.suspend_grad():
            g = self.world_gradient(dr.detach(g_local))
        scale = dr.rcp(dr.maximum(dr.squared_norm(g), 1e-12))
        return self.to_world @ u - g * (value - dr.detach(value)) * scale, g
