r"""
Secondary terminators: shading terminators of smooth meshes seen from path vertices
===================================================================================

On a smooth-shaded mesh Mitsuba's BSDFs return nothing where the
interpolated normal :math:`n_s` faces away from the viewer
(``pbdr.geometry.terminators``). Seen from a path vertex :math:`p`, the
radiance arriving from a face therefore jumps across the arc

.. math::

    H(x) = n_s(x) \cdot (p - x) = 0

inside the face, on no edge: lit (:math:`L_+`) where :math:`H > 0`, dark
(:math:`L_-`, emission only) where :math:`H < 0`.
``primary_terminators.py`` samples these arcs for the camera; this module
does it at every path vertex, beside the silhouettes of
``secondary_edges.py``: it is the light that a smooth mesh reflects onto
other surfaces (a floor under a smooth sphere) as the mesh moves.

With :math:`x` on the arc, :math:`n_f` the face's unit normal and
:math:`G = \nabla_x h` the gradient of :math:`h` in the face's plane, the
boundary term is

.. math::

    \int_{\text{arc}} f_s(\omega)\, (L_+ - L_-)\, \frac{\partial_\pi H}{\lVert G\rVert}\,
        \frac{|n_f\cdot\omega|}{\lVert x - p\rVert^2}\, d\ell(x),
    \qquad \omega = \frac{x - p}{\lVert x - p\rVert},

(:math:`f_s` with the cosine at :math:`p`): the lit region grows at the
normal speed :math:`\partial_\pi H / \lVert G\rVert`. :math:`\partial_\pi H`
is taken in the interior term's parameterization: :math:`x` slides along
the fixed ray from a static :math:`p`, and keeps its barycentrics when
:math:`p` moves (then :math:`p`'s motion enters :math:`H`). In direction
space the same term reads :math:`\Delta L\, \partial_\pi H / \lVert\nabla_\omega
H\rVert` over :math:`\sin\alpha / \lVert x-p \rVert\, d\ell`, and
:math:`\sin\alpha / \lVert\nabla_\omega H\rVert = |n_f\cdot\omega| /
(\lVert x - p\rVert\, \lVert G\rVert)`: both give the factor above.

Sampling, as for edges (``edge_sampling.py``): at each vertex a face is
drawn among the candidates (every :math:`S`-th face from a random offset,
:math:`S = \lceil F / M \rceil`, :math:`M` = ``terminator_candidates``; of the
moving meshes' faces at a static point, of all smooth meshes' at a point
on a moving mesh, whose view of a static arc changes) in proportion to the
weight :math:`W` of its arc's chord taken as an edge; a point on the chord
with density
:math:`\propto \cos\varphi\, d\varphi`; it is moved onto the arc along the
chord's normal in the face's plane, where the density per unit arc length
is the chord's times :math:`|\tau\cdot\hat c|` (:math:`\tau` the arc's
tangent, :math:`\hat c` the chord's direction). The two side rays aim at
points of the face just across the arc (a fixed angular offset can miss a
thin dark rim).

Not represented (as for the camera): arcs that enter and leave a face by
one side (its corners' :math:`H` share a sign), back faces of closed
meshes, and arc points whose move leaves the face. Where the chord
dips below the tangent plane of :math:`p` while the arc does not, the
arc is missed: there :math:`f_s` carries a vanishing cosine.
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.edges import concat_lanes, mesh_topology
from pbdr.geometry.terminators import face_corners, is_smooth_shaded
from pbdr.geometry.moving import moves, ray_triangle
from pbdr.integrators.boundary.sides import trace_side_pairs
from pbdr.integrators.boundary.edge_sampling import (Candidates, EdgeView, PackedRows, edge_line, flag_bits, pdf_on_part,
                                                stream_step, vector_at)
from pbdr.integrators.boundary.primary_terminators import nearest_root, reach

INSIDE_TOLERANCE = 1e-4     # barycentric slack when testing that an arc point lies on its face
SIDE_OFFSET = 1e-3          # side points this fraction of the face's size across the arc (at most)


@dataclass
class SmoothFaces:
    """The faces of the smooth-shaded meshes (AD-attached), the moving meshes' first."""

    v: list                 # the corners, 3 Point3f
    n: list                 # the vertex normals there, 3 Vector3f
    closed: mi.Bool         # of a closed mesh: seen from behind, a face is hidden
    moving_count: int       # faces 0 .. moving_count - 1 are of moving meshes

    def __len__(self) -> int:
        return dr.width(self.closed)


def smooth_face_set(scene: mi.Scene) -> SmoothFaces | None:
    """The faces of the scene's smooth-shaded meshes (None: none, or none moves).

    A static arc seen from a static point adds nothing; seen from a point on
    a moving mesh it moves (H depends on p), so static meshes count too."""
    meshes = [m for m in scene.shapes() if is_smooth_shaded(m)]
    meshes.sort(key=lambda m: not moves(m))         # stable: the moving ones first
    if not meshes or not any(moves(m) for m in scene.shapes()):
        return None
    per_mesh = [face_corners(mesh, dr.arange(mi.UInt32, mesh.face_count())) for mesh in meshes]
    cat = [concat_lanes([c[k] for c in per_mesh]) for k in range(6)]
    closed = [np.full(mesh.face_count(), not mesh_topology(mesh).boundary.any()) for mesh in meshes]
    moving_count = sum(m.face_count() for m in meshes if moves(m))
    return SmoothFaces(cat[:3], cat[3:], mi.Bool(np.concatenate(closed)), moving_count)


def _side_root(h0: mi.Float, h1: mi.Float, n0: mi.Vector3f, n1: mi.Vector3f, v0: mi.Point3f,
               v1: mi.Point3f, p: mi.Point3f) -> mi.Float:
    """Where h changes sign on the side v0 -> v1 (h0, h1 of opposite signs):
    the root in [0, 1] of h(t) = (n0 + t Δn)·(p - v0 - t Δv)."""
    dn, dv = n1 - n0, v1 - v0
    α = -dr.dot(dn, dv)
    β = dr.dot(dn, p - v0) - dr.dot(n0, dv)
    q = -0.5 * (β + dr.copysign(dr.sqrt(dr.maximum(β * β - 4 * α * h0, 0.0)), β))
    r1, r2 = q / α, h0 / q
    linear = h0 / (h0 - h1)
    inside = lambda r: dr.isfinite(r) & (r >= 0) & (r <= 1)    # noqa: E731
    return dr.select(inside(r2), r2, dr.select(inside(r1), r1, linear))


@dataclass
class _Face:
    """A candidate face seen from p: its corners and normals (detached) and its arc's chord."""

    v: list
    n: list
    a: mi.Point3f           # the chord's ends
    b: mi.Point3f
    crossed: mi.Bool        # H changes sign over the corners, and the face can be seen

    @staticmethod
    def at(p: mi.Point3f, v: list, n: list, h: list, closed: mi.Bool) -> "_Face":
        """The face with corners ``v``, normals ``n`` and H at the corners ``h`` (``TerminatorSampler._corners``)."""
        pos = [h[k] > 0 for k in range(3)]
        cross = [pos[k] != pos[(k + 1) % 3] for k in range(3)]
        X = []
        for k in range(3):
            j = (k + 1) % 3
            X.append(dr.lerp(v[k], v[j], _side_root(h[k], h[j], n[k], n[j], v[k], v[j], p)))
        front = dr.dot(dr.cross(v[1] - v[0], v[2] - v[0]), p - v[0]) > 0
        return _Face(v, n, dr.select(cross[0], X[0], X[1]), dr.select(cross[2], X[2], X[1]),
                     (cross[0] | cross[1]) & (front | ~closed))

    def line(self, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool):
        """The chord as an edge seen from p (``edge_sampling``'s weights and point densities)."""
        return edge_line(p, n, clip, self.a, self.b, EdgeView.chord(), mi.Bool(False))


@dataclass
class TerminatorSample:
    index: mi.UInt32        # the face
    x: mi.Point3f           # the arc point (detached)
    bary: mi.Point2f        # its barycentrics (b1, b2)
    G: mi.Vector3f          # ∇h in the face's plane at x (towards the lit side)
    n_f: mi.Vector3f        # the face's unit normal
    sides: tuple            # points on the face across the arc: (dark side, lit side)
    inv_pdf: mi.Float       # 1 / (density per unit arc length at x, face choice included)
    active: mi.Bool


class TerminatorSampler:
    """Draws a point on the terminator arcs of moving smooth meshes seen from shading points."""

    def __init__(self, faces: SmoothFaces, candidates: int, fraction: float = 1.0) -> None:
        self.fraction = fraction    # the share of vertices that draw a sample
        # What the scan reads of a face, in one row: corners, their normals, closed.
        self.rows = PackedRows([c for x in (*faces.v, *faces.n) for c in dr.detach(x)] +
                               [flag_bits([faces.closed])], len(faces))
        # As for edges: a static point weighs the moving meshes' faces, a moving point all.
        self.candidates = Candidates.of(len(faces), faces.moving_count, candidates)

    def _corners(self, j: mi.UInt32, p: mi.Point3f) -> tuple[list, list, list, mi.Bool]:
        """Face j's corners, their normals, H = n·(p - v) there, and whether its mesh is closed."""
        r = self.rows[j]
        v = [mi.Point3f(vector_at(r, 3 * k)) for k in range(3)]
        n = [vector_at(r, 9 + 3 * k) for k in range(3)]
        return v, n, [dr.dot(n[k], p - v[k]) for k in range(3)], r[18] > 0

    def _face(self, j: mi.UInt32, p: mi.Point3f) -> _Face:
        return _Face.at(p, *self._corners(j, p))

    @dr.syntax
    def _weight(self, j: mi.UInt32, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool) -> mi.Float:
        v, nv, h, closed = self._corners(j, p)
        W = mi.Float(0.0)
        # A branch: most faces hold no arc seen from p.
        if ((h[0] > 0) != (h[1] > 0)) | ((h[0] > 0) != (h[2] > 0)):
            face = _Face.at(p, v, nv, h, closed)
            line = face.line(p, n, clip)
            W = dr.select(face.crossed, line.weight(line.t_a, line.t_b, clip), 0.0)
        return W

    @dr.syntax
    def _choose(self, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool, u: mi.Float, active: mi.Bool,
                moves_p: mi.Bool) -> tuple[mi.UInt32, mi.Float, mi.Float]:
        """A candidate face ∝ W in one pass (streaming inversion, see ``EdgeSampler._choose``),
        the Horvitz-Thompson estimate of ΣW, and what is left of ``u``."""
        count, S, j, u = self.candidates.at(moves_p, u)
        total, chosen = mi.Float(0.0), mi.UInt32(0)
        while dr.hint(active & (j < count), exclude=[p, n, clip, active, count, S]):
            W = self._weight(j, p, n, clip)
            total += W
            chosen, u = stream_step(W, total, j, chosen, u)
            j += S
        return chosen, total * mi.Float(S), u

    def sample(self, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool, u_face: mi.Float,
               u_point: mi.Float, active: mi.Bool, moves_p: mi.Bool) -> TerminatorSample:
        """An arc point for shading points ``p`` (normal ``n`` on the side of wi;
        ``moves_p``: p follows the parameters, else only moving meshes' arcs are drawn)."""
        j, total, _ = self._choose(p, n, clip, u_face, active, moves_p)
        dr.eval(j, total)
        face = self._face(j, p)
        line = face.line(p, n, clip)
        W = line.weight(line.t_a, line.t_b, clip)
        # A point on the chord ∝ cos φ dφ (as on an edge), its density per unit length.
        t = line.draw(line.t_a, line.t_b, u_point)
        pdf = pdf_on_part(line, line.t_a, line.t_b, W, t) / total
        c = dr.lerp(face.a, face.b, t)
        ĉ = dr.normalize(face.b - face.a)

        # Onto the arc along the chord's normal N in the face's plane:
        # h(c + u N) = α u² + β u + γ, with n_s linear over the plane.
        v0, n0 = face.v[0], face.n[0]
        e1, e2 = face.v[1] - v0, face.v[2] - v0
        d1, d2 = face.n[1] - n0, face.n[2] - n0
        n_f = dr.cross(e1, e2)
        inv = dr.rcp(dr.squared_norm(n_f))
        f1, f2 = dr.cross(e2, n_f) * inv, dr.cross(n_f, e1) * inv     # dual basis: b_k = f_k·(x - v0)
        N = dr.normalize(dr.cross(n_f, ĉ))
        bc = mi.Point2f(dr.dot(c - v0, f1), dr.dot(c - v0, f2))
        δb = mi.Vector2f(dr.dot(N, f1), dr.dot(N, f2))
        n_c = n0 + bc.x * d1 + bc.y * d2
        n_N = δb.x * d1 + δb.y * d2
        γ = dr.dot(n_c, p - c)
        β = dr.dot(n_N, p - c) - dr.dot(n_c, N)
        α = -dr.dot(n_N, N)
        u, found = nearest_root(α, β, γ)
        x = c + u * N
        bx = bc + u * δb
        inside = (bx.x >= -INSIDE_TOLERANCE) & (bx.y >= -INSIDE_TOLERANCE) & \
            (bx.x + bx.y <= 1 + INSIDE_TOLERANCE)

        n_x = n0 + bx.x * d1 + bx.y * d2
        G = (dr.dot(d1, p - x) - dr.dot(n_x, e1)) * f1 + (dr.dot(d2, p - x) - dr.dot(n_x, e2)) * f2
        τ = dr.normalize(dr.cross(n_f, G))
        pdf *= dr.abs(dr.dot(τ, ĉ))
        # Side points: SIDE_OFFSET of the face's size across the arc, or half-way
        # to the face's border when that is nearer.
        Ĝ = dr.normalize(G)
        δg = mi.Vector2f(dr.dot(Ĝ, f1), dr.dot(Ĝ, f2))
        size = dr.sqrt(dr.maximum(dr.squared_norm(e1), dr.squared_norm(e2)))
        sides = tuple(x + σ * dr.minimum(SIDE_OFFSET * size, 0.5 * reach(bx, σ * δg)) * Ĝ for σ in (-1.0, 1.0))

        active = active & face.crossed & found & inside & (W > 0) & (pdf > 0) & dr.isfinite(pdf) & \
            (dr.squared_norm(G) > 0)
        smp = TerminatorSample(j, x, bx, G, dr.normalize(n_f), sides, dr.select(active, dr.rcp(pdf), 0.0),
                               active)
        dr.eval(smp)
        return smp


def terminator_height(faces: SmoothFaces, smp: TerminatorSample, p_detached: mi.Point3f,
                      p_attached: mi.Point3f, moves_p: mi.Bool, solid_angle: mi.Bool | None = None) -> mi.Float:
    """H at the sample, attached to the parameters as the interior term moves it:
    along the fixed ray from a static p, at fixed barycentrics from a moving p;
    with ``solid_angle`` (the next vertex held in solid angle from p), along
    the ray in the fixed direction from the moving p."""
    v = [dr.gather(mi.Point3f, x, smp.index) for x in faces.v]
    n = [dr.gather(mi.Vector3f, x, smp.index) for x in faces.n]

    def height(b1: mi.Float, b2: mi.Float, p: mi.Point3f) -> mi.Float:
        x = v[0] + b1 * (v[1] - v[0]) + b2 * (v[2] - v[0])
        return dr.dot(n[0] + b1 * (n[1] - n[0]) + b2 * (n[2] - n[0]), p - x)

    ω = dr.normalize(smp.x - p_detached)
    _, b1, b2 = ray_triangle(p_detached, ω, *v)
    H = dr.select(moves_p, height(smp.bary.x, smp.bary.y, p_attached), height(b1, b2, p_detached))
    if solid_angle is not None:
        _, b1, b2 = ray_triangle(p_attached, ω, *v)
        H = dr.select(solid_angle, height(b1, b2, p_attached), H)
    return H


def terminator_samples_at(sensor: mi.Sensor, integrator: mi.Integrator, faces: SmoothFaces,
                          term_sampler: TerminatorSampler, sampler: mi.Sampler, seed: mi.UInt32,
                          count: int, vertex) -> tuple:
    """One terminator sample at each path's ``vertex`` (a ``secondary_edges.Vertex``).

    Returns (pixel position, [(A, H)], valid): the boundary value is A · H
    (A a detached Spectrum, H attached, see ``terminator_height``).
    """
    size = mi.ScalarVector2f(sensor.film().crop_size())
    active = mi.Bool(vertex.active)
    q = term_sampler.fraction
    with dr.suspend_grad():
        if q < 1:
            # A share q of the vertices, chosen per lane (not in blocks of
            # paths, which adds variance), each weighted 1/q.
            active &= sampler.next_1d() < q
        pd = vertex.p
        smp = term_sampler.sample(pd, vertex.n, vertex.clip, sampler.next_1d(), sampler.next_1d(), active,
                                  vertex.moves)
        active &= smp.active
        r = smp.x - pd
        dist = dr.norm(r)
        ω = r / dist
        f = vertex.f(ω, active)
        active &= dr.any(mi.unpolarized_spectrum(f) != 0) & (dist > 0)
        area = float(size[0] * size[1]) / count / q   # pixel-area weight of one camera sample (1/q: the vertex share)
        scale = vertex.β * f * (dr.abs(dr.dot(smp.n_f, ω)) / (dist * dist * dr.norm(smp.G)) * smp.inv_pdf * area)
        dr.eval(scale, active)

        # The two sides (lane 2i: dark, 2i + 1: lit), aimed at points of the face.
        lane = dr.arange(mi.UInt32, 2 * count)
        i = lane >> 1
        lit = (lane & 1) == 1
        target = dr.select(lit, dr.gather(mi.Point3f, smp.sides[1], i), dr.gather(mi.Point3f, smp.sides[0], i))
        side_ray = vertex.spawn(i, dr.normalize(target - dr.gather(mi.Point3f, pd, i)))
        side_ray.d = dr.normalize(target - side_ray.o)
        L_dark, L_lit, _, _ = trace_side_pairs(sensor, integrator, vertex, seed, 0x7E40, side_ray, active)
        A = dr.select(active, (L_lit - L_dark) * scale, 0.0)
        dr.eval(A)
    with dr.resume_grad():
        H = terminator_height(faces, smp, pd, vertex.position(), vertex.moves, vertex.next_in_solid_angle)
    return vertex.pos, [(A, H)], active
