r"""
Primary terminators: the boundary term of shading terminators seen from the camera
================================================================================

On smooth-shaded meshes the image is also discontinuous inside triangles,
where the interpolated normal turns away from the eye (see
``pbdr.geometry.terminators``). With screen position :math:`x` and

.. math::

    H(x, \pi) = h\big(b(x, \pi), \pi\big) = n_s(b) \cdot (o - p(b)),

:math:`b(x, \pi)` the barycentrics where the fixed camera ray through
:math:`x` meets the (moving) triangle, the boundary is :math:`H = 0` and the
region :math:`H > 0` grows at the normal speed
:math:`-\partial_\pi H / |\nabla_x H|` along :math:`-\nabla_x H`, so the
term is the one of ``primary_edges`` with

.. math::

    n = \nabla_x H / |\nabla_x H|, \qquad n \cdot \partial_\pi x = -\partial_\pi H / |\nabla_x H| .

Sampling: each crossed face holds one arc, represented by its chord; a
chord is drawn with the silhouette edges in proportion to projected length,
a point :math:`x_0` uniformly on it, and the point is moved along the
screen normal :math:`N` of the chord onto the arc. Screen lines are lines
in the triangle's plane, so the move solves a quadratic in the triangle's
barycentrics. The arc point's density per unit arc length is that of
:math:`x_0` times :math:`|\nabla_x H \cdot N| / |\nabla_x H|` (the arc's
normal against the chord's), so a sample's weight carries the inverse.
Points whose move leaves the face (an arc that is not a graph over its
chord) are dropped.

:math:`\partial_\pi H` is taken with Dr.Jit: the camera ray through the arc
point is intersected with the triangle built from the (AD-attached) vertex
positions and normals, which Mitsuba recomputes from the positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.camera import Camera, clip_edges, clipped_point, gather_columns
from pbdr.geometry.edges import concat_lanes
from pbdr.geometry.terminators import face_corners, terminator_chords
from pbdr.geometry.moving import ray_triangle
from pbdr.integrators.boundary.sides import FacePoint

INSIDE_TOLERANCE = 1e-4     # barycentric slack when testing that an arc point lies on its face


@dataclass
class TerminatorPoints:
    x: mi.Point2f           # screen position, attached: n · ∂x is the arc's normal speed
    p: mi.Point3f           # the arc point (detached)
    n: mi.Vector2f          # unit screen normal ∇H / |∇H| (detached)
    weight: mi.Float        # 1 / (density on the arc relative to the chord's): |∇H| / |∇H · N|
    valid: mi.Bool
    sides: tuple[FacePoint, FacePoint]  # points on the face just across the arc, on the sides of -n
                                        # and +n (the black rim is often thinner than any fixed screen offset)


class TerminatorTable:
    """The terminator chords of the moving smooth meshes as seen by ``cam``
    (``moving``: per shape of the scene; a terminator that does not move adds nothing)."""

    def __init__(self, scene: mi.Scene, cam: Camera, margin: float, moving: np.ndarray) -> None:
        chords = terminator_chords(scene, cam.origin, moving)
        self.skipped = chords.skipped
        self.clip = clip_edges(cam, chords.p_a, chords.p_b, margin) if len(chords) else None
        self.length = self.clip["length"] if self.clip is not None else np.zeros(0)
        if not len(chords):
            return
        shapes = scene.shapes()
        per_shape = [face_corners(shapes[int(index)], mi.UInt32(chords.face_id[chords.shape_index == index]
                                                                  .astype(np.uint32)))
                     for index in np.unique(chords.shape_index)]
        self.corners = [concat_lanes([c[k] for c in per_shape]) for k in range(6)]
        self.a, self.b = chords.a, chords.b
        self.shape_index = mi.UInt32(chords.shape_index.astype(np.uint32))
        self.prim = mi.UInt32(chords.face_id.astype(np.uint32))

    def __len__(self) -> int:
        return len(self.length)

    def points(self, cam: Camera, idx: mi.UInt32, ξ: mi.Float, active: mi.Bool,
               side_epsilon: float) -> TerminatorPoints:
        """Arc points for chord indices ``idx`` and uniform ``ξ`` along each chord;
        the side points at most ``side_epsilon`` pixels away."""
        idx = dr.minimum(idx, len(self) - 1)
        with dr.suspend_grad():
            s, N = clipped_point(self.clip, idx, ξ)     # N: the chord's screen normal
            a1, a2, b1, b2 = gather_columns((self.a[:, 0], self.a[:, 1], self.b[:, 0], self.b[:, 1]), idx)
            b0 = dr.lerp(mi.Point2f(a1, a2), mi.Point2f(b1, b2), s)
            v0, v1, v2, m0, m1, m2 = (dr.detach(dr.gather(type(c), c, idx)) for c in self.corners)
            face = _Face(v0, v1 - v0, v2 - v0, m0, m1 - m0, m2 - m0, mi.ScalarPoint3f(cam.origin))
            # The screen line x0 + σ N is the line b0 + u δb in the face's plane.
            δb = face.solve(face.jacobian(cam, b0), N)
            u, hit = face.root_along(b0, δb)
            b = b0 + u * δb
            valid = active & hit & (b.x >= -INSIDE_TOLERANCE) & (b.y >= -INSIDE_TOLERANCE) & \
                (b.x + b.y <= 1 + INSIDE_TOLERANCE)
            p = face.point(b)
            x = cam.project(p)
            J = face.jacobian(cam, b)
            grad_H = face.screen_gradient(J, b)
            norm = dr.norm(grad_H)
            n = grad_H / norm
            weight = norm / dr.abs(dr.dot(grad_H, N))
            valid &= dr.isfinite(weight) & (norm > 0)
            # Side points on the face: ``side_epsilon`` pixels away, or half-way
            # to the face's border when that is nearer. Not closer: the arc's
            # position carries float error (h is a near-cancelling dot
            # product), and side points too close to a thin rim land on the
            # wrong side of it.
            δn = face.solve(J, n)
            shape_index, prim = dr.gather(mi.UInt32, self.shape_index, idx), dr.gather(mi.UInt32, self.prim, idx)
            sides = []
            for σ in (-1.0, 1.0):
                b_side = b + σ * dr.minimum(side_epsilon, 0.5 * reach(b, σ * δn)) * δn
                sides.append(FacePoint(face.point(b_side), shape_index, prim, mi.Point2f(b_side)))

        # ∂π H at the fixed ray through x, from the attached face.
        o = mi.ScalarPoint3f(cam.origin)
        ray_d = dr.normalize(dr.detach(p) - o)
        v0, v1, v2, m0, m1, m2 = (dr.gather(type(c), c, idx) for c in self.corners)
        _, b1, b2 = ray_triangle(o, ray_d, v0, v1, v2)
        p_att = v0 + b1 * (v1 - v0) + b2 * (v2 - v0)
        H = dr.dot(m0 + b1 * (m1 - m0) + b2 * (m2 - m0), o - p_att)
        speed = -(H - dr.detach(H)) / dr.select(valid, norm, 1.0)
        return TerminatorPoints(mi.Point2f(x + n * speed), p, n, dr.select(valid, weight, 0.0), valid, tuple(sides))


def nearest_root(α: mi.Float, β: mi.Float, γ: mi.Float) -> tuple[mi.Float, mi.Bool]:
    """The root of α u² + β u + γ closest to u = 0, and whether it exists
    (the stable form: γ / q stays exact when α is small)."""
    disc = β * β - 4 * α * γ
    q = -0.5 * (β + dr.copysign(dr.sqrt(dr.maximum(disc, 0)), β))
    near = dr.select(q != 0, γ / q, 0.0)
    far = q / α
    u = dr.select(dr.isfinite(far) & (dr.abs(far) < dr.abs(near)), far, near)
    return u, (disc >= 0) & dr.isfinite(u)


def reach(b: mi.Point2f, d: mi.Vector2f) -> mi.Float:
    """How far b + u d stays inside the triangle (b1, b2 >= 0, b1 + b2 <= 1)."""
    big = mi.Float(1e30)
    u = dr.select(d.x < 0, -b.x / d.x, big)
    u = dr.minimum(u, dr.select(d.y < 0, -b.y / d.y, big))
    s = d.x + d.y
    return dr.maximum(dr.minimum(u, dr.select(s > 0, (1 - b.x - b.y) / s, big)), 0.0)


@dataclass
class _Face:
    """A triangle with interpolated normals, in barycentrics b = (b1, b2) (detached)."""

    v0: mi.Point3f
    e1: mi.Vector3f
    e2: mi.Vector3f
    m0: mi.Vector3f
    d1: mi.Vector3f
    d2: mi.Vector3f
    o: mi.ScalarPoint3f

    def point(self, b: mi.Point2f) -> mi.Point3f:
        return self.v0 + b.x * self.e1 + b.y * self.e2

    def normal(self, b: mi.Point2f) -> mi.Vector3f:
        return self.m0 + b.x * self.d1 + b.y * self.d2

    def jacobian(self, cam: Camera, b: mi.Point2f) -> tuple[mi.Float, mi.Float, mi.Float, mi.Float]:
        """∂x/∂b (2 x 2, row-major) of the screen position."""
        jx, jy = cam.project_jacobian(self.point(b))
        return dr.dot(jx, self.e1), dr.dot(jx, self.e2), dr.dot(jy, self.e1), dr.dot(jy, self.e2)

    @staticmethod
    def solve(J: tuple[mi.Float, mi.Float, mi.Float, mi.Float], N: mi.Vector2f) -> mi.Vector2f:
        """δb with J δb = N, J = ∂x/∂b (``jacobian``)."""
        a, c, d, e = J
        det = a * e - c * d
        return mi.Vector2f(e * N.x - c * N.y, a * N.y - d * N.x) / det

    def root_along(self, b: mi.Point2f, δb: mi.Vector2f) -> tuple[mi.Float, mi.Bool]:
        """The root of h(b + u δb) = α u² + β u + γ closest to u = 0."""
        p, e = self.point(b), δb.x * self.e1 + δb.y * self.e2
        nb, nδ = self.normal(b), δb.x * self.d1 + δb.y * self.d2
        γ = dr.dot(nb, self.o - p)
        β = dr.dot(nδ, self.o - p) - dr.dot(nb, e)
        α = -dr.dot(nδ, e)
        return nearest_root(α, β, γ)

    def screen_gradient(self, J: tuple[mi.Float, mi.Float, mi.Float, mi.Float], b: mi.Point2f) -> mi.Vector2f:
        """∇_x H = J^-T ∇_b h at b, J = ∂x/∂b there (``jacobian``)."""
        p, n = self.point(b), self.normal(b)
        g1 = dr.dot(self.d1, self.o - p) - dr.dot(n, self.e1)
        g2 = dr.dot(self.d2, self.o - p) - dr.dot(n, self.e2)
        a, c, d, e = J
        det = a * e - c * d
        return mi.Vector2f(e * g1 - d * g2, a * g2 - c * g1) / det
