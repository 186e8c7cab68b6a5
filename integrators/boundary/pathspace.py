r"""
Path-space boundary segments: the secondary boundary term sampled from the edge
===============================================================================

Zhang, Miller, Yan, Gkioulekas, Zhao 2020 ("Path-Space Differentiable
Rendering", sec. 5) write the boundary term of a path integral over
*boundary segments*: a path vertex :math:`x_a`, a point :math:`m` on a mesh
edge, and the line through both, which continues past the edge to
:math:`x_b`. Where the edge is a silhouette (or a crease, or an open
boundary) as seen along that line, the radiance arriving at :math:`x_a`
from direction :math:`\omega = (m - x_a)/\lVert m - x_a\rVert` jumps.

``secondary_edges.py`` estimates the same boundary term from the other end:
at a camera-path vertex :math:`p = x_a` it integrates over edge points,
:math:`\int f_s\, \Delta L\, (n_h\cdot\dot m)\, \sin\alpha / r^2\, d\ell(m)`
(:math:`r = \lVert m - p\rVert`, :math:`\alpha` the angle between
:math:`\omega` and the edge, :math:`n_h` the normal of the plane through
:math:`p` and the edge), and the camera path's vertex is integrated over
area with the camera importance :math:`W(p)`. Here the pair
:math:`(p, m)` is reparameterized by :math:`(m, \omega)`: :math:`p` is the
first surface hit from :math:`m` along :math:`-\omega`, and
:math:`dA(p) = r^2/|\cos\theta_p|\, d\omega`, so the :math:`1/r^2` of the
edge measure cancels and

.. math::

    \partial_\pi I^{\text{bnd}}_j = \int_{\text{edges}} \int_{S^2}
        W_j(x_a)\, \frac{f_s(x_a;\, \omega_{\text{cam}}, \omega)}{|\cos\theta_a|}\,
        \Big[(L_- - L_+)\, n_h\cdot\dot m + (L_- c_- - L_+ c_+)\, r\, n_h\cdot\dot x_a\Big]
        \sin\alpha\; d\omega\, d\ell(m),

with :math:`L_\mp` the radiance arriving at :math:`x_a` just on either side
of the edge (side paths towards :math:`m \mp \epsilon\, r\, n_h`, the same
side-ray machinery and velocity coefficients :math:`c_\mp` as
``secondary_edges.py``: 0 on the side that ends at the edge's own faces,
:math:`1/d - 1/r` on a side that passes it to a surface at distance
:math:`d`), :math:`f_s` including :math:`|\cos|` towards :math:`\omega`
(Mitsuba's ``bsdf.eval``) and :math:`\cos\theta_a` the geometric cosine
towards :math:`\omega`.

The camera side is a particle tracer from :math:`x_a` (as Mitsuba's
``ptracer``; ``pathspace_camera.py``): :math:`x_a` is connected to the sensor
(``sensor.sample_direction``, a shadow ray; splatted with the pixel filter
at its film position; :math:`W` is the sensor's weight times
:math:`|\cos|` at :math:`x_a` towards it, times the image's pixel count,
the film being sampled uniformly), and for longer paths a BSDF walk from
:math:`x_a` connects each of its vertices to the sensor. At walk vertex
:math:`j` the point :math:`x_a` is camera-path vertex :math:`j`, so its side
paths get the depth left after it, ``max_depth - 1 - j``: the sides are
traced once, with the depth left after :math:`j = 0`, and cut to each
:math:`j`'s (the paths of a shorter ``max_depth``: the same numbers drawn),
with common random numbers for the two sides (``sides.trace_side_pairs``).
Each walk step from :math:`y` (arriving from direction
:math:`\omega_{\text{in}}`) to direction :math:`\omega_o` weighs
:math:`f_s(y;\, \omega_o, \omega_{\text{in}}) |\cos_g \omega_o| /
(|\cos_g \omega_{\text{in}}|\, p(\omega_o))`, the radiance-mode BSDF in the
camera path's order, so the estimate is the camera paths' own integral.
With ``pathspace_walks`` = K, K independent walks leave :math:`x_a`, each
weighted 1/K; at each :math:`j` they share :math:`x_a`'s two side paths,
which cost more than a walk step and a sensor connection (splitting: the
camera side's noise falls where :math:`x_a` is out of view).

The motion of :math:`x_a` follows ``pbdr_interior``'s parameterization: it
slides along the (fixed) ray from the camera, or from the next walk
vertex.

**Sampling.** An edge is drawn in proportion to its length times the
measure of its directions (below), a point uniformly on it; samples are
stratified along the edges laid end to end (as ``primary_edges.py``). The
moving meshes' edges carry the term; a static mesh's edges count only where
the shading point :math:`x_a` moves (through :math:`n_h\cdot\dot x_a`), and
are drawn with a weight of their own, ``pathspace_static`` (0.25 by
default; 0 leaves them out, which is biased where moving surfaces see
static edges, e.g. a moving object lit by an area light).

The direction is one-sample MIS (the mixture density) of the pencil and
one of two other strategies, chosen by the edge:

- **pencil**: :math:`\omega = \cos\alpha\, \hat e + \sin\alpha\, (\cos\varphi\, a
  + \sin\varphi\, b)` with :math:`\cos\alpha` uniform and :math:`\varphi`
  uniform on the arc of the edge's *plane pencil* where it can be a
  discontinuity seen along the line. A crease of a one-sided surface seen
  from behind on both faces (:math:`n_0\cdot\omega > 0` and
  :math:`n_1\cdot\omega > 0`, an arc of :math:`\pi - \Delta` for normals
  :math:`\Delta` apart) never is, and is skipped; open boundaries and
  creases of two-sided surfaces use the whole circle, as does the baseline
  ``pathspace_directions = "sphere"`` (uniform directions). The density is
  :math:`1/(2\Phi_e)` on an arc of angle :math:`\Phi_e`. The other
  strategies' outcomes off the arc are null (the integrand is 0 there),
  so the mixture density is at least the pencil's share of it;
- **light** (half of the samples on edges of non-emitters, when the
  scene's mesh emitters have at most ``MAX_EMITTER_TRIANGLES`` triangles):
  towards a point drawn uniformly by area on the emitter triangles, so that
  the line beyond the edge ends on a light, where shadow boundaries are.
  Its density sums :math:`t^2/(A\,|\cos|)` over the emitter triangles the
  ray from :math:`m` meets;
- **camera** (half of the samples on an emitter's own edges, where the
  directions towards the emitter lie in its plane): through the first hit
  :math:`z` of a camera ray through a uniform point of the film. The
  outcome is null unless :math:`z` is :math:`x_a` (not hidden from
  :math:`m`, same triangle) and is not seen edge-on from :math:`m`
  (:math:`|\cos\theta_a|` above ``GRAZING``); the density of the other
  outcomes is :math:`p_A(x_a)\, r^2/|\cos\theta_a|`, with :math:`p_A` the
  area density of camera rays' first hits, the sensor's weight at
  :math:`x_a` times its cosine towards the sensor.

With ``pathspace_guiding`` > 0, a grid over the pencil's sample space and
the edge position, learned from the term's own earlier samples
(``pathspace_guiding.py``), guides the pencil strategy.

Limits: shading terminators of smooth meshes are not sampled along
boundary segments (``vertex_terminators.py`` samples them from camera-path
vertices); the camera walk stops at delta BSDFs (mirrors, glass);
surfaces only; perspective sensors (``sample_direction``), and a shading
point that projects outside the image is dropped, so pixels at the film's
border miss what wide filters reach from beyond it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.edges import EdgeSet, scene_edges
from pbdr.geometry.moving import hit_distance, moving_meshes, on_meshes, ray_triangle, sliding_point
from pbdr.integrators.boundary.edge_sampling import edge_view, emitter_triangles
from pbdr.integrators.boundary.pathspace_camera import SensorConnection, walk_step
from pbdr.integrators.boundary.pathspace_guiding import GuideGrid, RunningGrid, accumulate, running_grid
from pbdr.integrators.boundary.primary_edges import sample_by_length
from pbdr.integrators.boundary.secondary_edges import (adjacent_faces, holds_first_bounce_in_solid_angle, side_rays,
                                                       trace_sides, velocity_coefficient)
from pbdr.integrators.boundary.sides import trace_side_pairs
from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, Setting, depth_limit, walk_depth

DIRECTIONS = ("pencil", "sphere")
STREAM = 0x9A75   # the term's random stream (seeded with the call's seed)
LIGHT_FRACTION = 0.5     # share of directions towards the emitter triangles (edges of non-emitters)
CAMERA_FRACTION = 0.5    # share of directions through the first hits of camera rays (emitters' own edges)
GRAZING = 1e-3           # the camera strategy leaves out shading points seen from m at |cos| below this
MAX_EMITTER_TRIANGLES = 32


class _SideVertex:
    """What ``sides.trace_side_pairs`` needs of the vertex the sides start at:
    x_a as camera-path vertex 0, and how to trace side rays from it. The
    side paths are traced once, with the depth left after vertex 0; at walk
    vertex j, x_a is camera-path vertex j, and its sides are the same paths
    cut to the depth left after j (``InteriorIntegrator.sample``'s
    ``cutoffs``): ``trace`` returns one radiance per j."""

    k = 0

    def __init__(self, scene: mi.Scene, integrator: mi.Integrator, walk_vertices: int) -> None:
        self.scene, self.integrator = scene, integrator
        D = depth_limit(integrator)
        self.cutoffs = tuple(D - 1 - j for j in range(walk_vertices)) if D > 0 else ()
        self.walk_vertices = walk_vertices

    def trace(self, sampler: mi.Sampler, lanes: mi.UInt32, ray: mi.Ray3f, depth_left: int,
              active: mi.Bool) -> tuple[list, mi.Float]:
        L, (d, *L_cut) = trace_sides(self.integrator, self.scene, sampler, ray, depth_left, active, first_hit=True,
                                     coherent=False, cutoffs=self.cutoffs)
        return (L_cut if self.cutoffs else [L] * self.walk_vertices), d


def direction_arcs(n0: np.ndarray, n1: np.ndarray, always: np.ndarray, mode: str) -> np.ndarray:
    """Per edge, the angle Φ of the arc of the plane pencil sampled (see the
    module docstring): π + Δ for creases of one-sided surfaces in ``pencil``
    mode (Δ the angle between the face normals), else 2π."""
    cos = np.clip(np.einsum("ij,ij->i", n0, n1), -1.0, 1.0)
    pencil = np.pi + np.arccos(cos)
    return np.where(always | (mode == "sphere"), 2 * np.pi, pencil)


def _pencil_frame(e: mi.Vector3f, n0: mi.Vector3f, n1: mi.Vector3f) -> tuple[mi.Vector3f, mi.Vector3f, mi.Vector3f]:
    """(ê, a, b): the edge's direction, the centre a = -(n0 + n1)/|n0 + n1| of
    the sampled arc of its plane pencil (any direction ⊥ ê when the normals
    cancel), and b = ê × a."""
    ê = dr.normalize(e)
    c = n0 + n1
    c = c - dr.dot(c, ê) * ê
    a = dr.select(dr.squared_norm(c) > 1e-12, -dr.normalize(c), mi.Frame3f(ê).s)
    return ê, a, dr.cross(ê, a)


def pencil_direction(frame: tuple, half: mi.Float, u_cos: mi.Float, u_phi: mi.Float) -> mi.Vector3f:
    """ω = cos α ê + sin α (cos φ a + sin φ b), cos α = 2 u_cos - 1 and φ
    uniform in [-half, half]: uniform on its part of the sphere."""
    ê, a, b = frame
    cos_a = 2 * u_cos - 1
    sin_a = dr.safe_sqrt(1 - cos_a * cos_a)
    sin_φ, cos_φ = dr.sincos((2 * u_phi - 1) * half)
    return cos_a * ê + sin_a * (cos_φ * a + sin_φ * b)


def pencil_coordinates(frame: tuple, half: mi.Float, ω: mi.Vector3f) -> tuple[mi.Float, mi.Float, mi.Bool]:
    """The uniforms (u_cos, u_phi) that ``pencil_direction`` maps to ω, and
    whether ω lies on the arc (its density there is 1/(4 half))."""
    ê, a, b = frame
    φ = dr.atan2(dr.dot(ω, b), dr.dot(ω, a))
    return 0.5 * (dr.dot(ω, ê) + 1), 0.5 * (φ / half + 1), dr.abs(φ) <= half


class EmitterTriangles:
    """The triangles of the scene's mesh area emitters (positions detached),
    for the light strategy: ω towards a point drawn uniformly by area on
    them, so that the segment beyond the edge point ends on a light. Off
    (``len() == 0``) without such emitters or with more than
    ``MAX_EMITTER_TRIANGLES`` triangles (its density loops over them)."""

    def __init__(self, scene: mi.Scene) -> None:
        tris = emitter_triangles(scene)[0].astype(np.float64)
        area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
        keep = area > 0
        self.tris, self.area = tris[keep], area[keep]
        if len(self.area) > MAX_EMITTER_TRIANGLES:
            self.tris, self.area = np.zeros((0, 3, 3)), np.zeros(0)
        if len(self):
            self.total = float(self.area.sum())
            self.distr = mi.DiscreteDistribution(mi.Float(self.area.astype(np.float32)))
            self.vertices = [mi.Point3f(*(mi.Float(self.tris[:, k, c].astype(np.float32)) for c in range(3)))
                             for k in range(3)]

    def __len__(self) -> int:
        return len(self.area)

    def sample(self, m: mi.Point3f, u: mi.Float, uv: mi.Point2f) -> mi.Vector3f:
        """A direction from m towards a point uniform (by area) on the emitter triangles."""
        idx, _ = self.distr.sample_reuse(u)
        v = [dr.gather(mi.Point3f, vk, idx) for vk in self.vertices]
        b = mi.warp.square_to_uniform_triangle(uv)
        y = v[0] * (1 - b.x - b.y) + v[1] * b.x + v[2] * b.y
        return dr.normalize(y - m)

    def pdf(self, m: mi.Point3f, ω: mi.Vector3f) -> mi.Float:
        """Solid-angle density of ``sample`` at ω: Σ over the triangles the ray
        from m meets of t² / (A |cos|) (A the emitters' total area)."""
        pdf = mi.Float(0)
        for k in range(len(self)):
            v = [mi.ScalarPoint3f(*self.tris[k, j]) for j in range(3)]
            t, b1, b2 = ray_triangle(m, ω, *v)
            n = np.cross(self.tris[k, 1] - self.tris[k, 0], self.tris[k, 2] - self.tris[k, 0])
            cos = dr.abs(dr.dot(mi.ScalarVector3f(*(n / np.linalg.norm(n))), ω))
            hit = (t > 0) & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (cos > 0)
            pdf += dr.select(hit, t * t / (self.total * dr.select(hit, cos, 1.0)), 0.0)
        return pdf


def guided_batches(run: RunningGrid, guiding: int, count: int, pixels: int) -> list[tuple[int, bool]]:
    """(segments, drawn from the grid) per batch of a guided call: uniform
    until the running grid has seen ``guiding`` segments per pixel, from the
    grid after (``pathspace_guiding.py``)."""
    if run.seen >= guiding:
        return [(count, True)]
    uniform = min(count, int(np.ceil((guiding - run.seen) * pixels)))
    return [(uniform, False), (count - uniform, True)]


def pathspace_samples(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator, seed: mi.UInt32,
                      count: int, mode: str, static_weight: float, guiding: int = 0,
                      walks: int = 1) -> Iterator[BoundarySamples]:
    """``count`` boundary segments (m, ω); per camera-walk vertex j a batch of
    samples whose boundary value is A_m·(n_h·m) + A_p·(n_h·x_a). ``guiding``:
    segments per pixel the running grid sees before it guides (0: no
    guiding; ``pathspace_guiding.py``); ``walks``: camera walks per segment."""
    depth = walk_depth(integrator)
    if depth < 2:
        return
    edges = scene_edges(scene)
    movers = moving_meshes(scene)       # (outside suspend_grad: it tests for gradients)
    if edges.moving_count == 0 or not movers:
        return
    host = edges.numpy()
    length = np.linalg.norm(host["p1"] - host["p0"], axis=1)
    Φ = direction_arcs(host["n0"], host["n1"], host["boundary"], mode)
    # Static edges count only where x_a moves: drawn with a weight of their own.
    share = np.where(np.arange(len(edges)) < edges.moving_count, 1.0, static_weight)
    measure = length * 2 * Φ * share            # ∫ dℓ ∫ dω over the sampled set, per edge, weighted
    if not measure.sum() > 0:
        return
    lights = EmitterTriangles(scene)
    shapes = scene.shapes()
    emitter_edge = mi.Bool(np.array([shapes[i].emitter() is not None for i in host["shape"]], dtype=bool))
    size = sensor.film().crop_size()
    pixels = int(size[0]) * int(size[1])
    run = (running_grid(integrator, scene, len(edges), depth, mode, static_weight, walks, tuple(size))
           if guiding > 0 else None)
    batches = guided_batches(run, guiding, count, pixels) if run is not None else [(count, False)]
    draw = _EdgeDraw(edges, movers, measure, Φ, static_weight, lights, emitter_edge, depth, walks)
    for batch, (lanes, from_grid) in enumerate(batches):
        if lanes == 0:
            continue
        record = [] if run is not None else None
        yield from _segments(scene, sensor, integrator, draw, seed, batch, lanes, count,
                             run.grid() if from_grid else None, record)
        if record:
            # each batch's magnitudes, scaled to a whole estimate of the cells' integrals
            run.add(accumulate(record[:3], record[3] * (count / lanes)), lanes / pixels)


@dataclass
class _EdgeDraw:
    """What every batch of a call draws its segments from."""

    edges: EdgeSet
    movers: list                # the moving meshes
    measure: np.ndarray         # per edge: ∫ dℓ ∫ dω over its sampled set, weighted (the edge draw's density)
    Φ: np.ndarray               # per edge: its pencil arc
    static_weight: float        # ``pathspace_static``
    lights: EmitterTriangles
    emitter_edge: mi.Bool       # per edge: an emitter's own
    depth: int                  # ``walk_depth``
    walks: int                  # ``pathspace_walks``


def _segments(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator, draw: _EdgeDraw, seed: mi.UInt32,
              batch: int, lanes: int, count: int, guide: GuideGrid | None,
              record: list | None) -> Iterator[BoundarySamples]:
    """``lanes`` of the call's ``count`` segments (their values are weighted
    1/count), drawn uniformly or from ``guide``; ``record`` receives each
    segment's (u0, u1, u2, magnitude). ``batch`` picks the random stream."""
    solid_angle_bounce = holds_first_bounce_in_solid_angle(integrator)
    edges, movers, measure, Φ, static_weight = draw.edges, draw.movers, draw.measure, draw.Φ, draw.static_weight
    lights, emitter_edge, depth, walks = draw.lights, draw.emitter_edge, draw.depth, draw.walks
    with dr.suspend_grad():
        s_edge, s_side = mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(STREAM + batch))
        sampler = sensor.sampler().clone()
        sampler.seed(s_edge, lanes)
        u = (mi.Float(dr.arange(mi.UInt32, lanes)) + sampler.next_1d()) * (1.0 / lanes)
        v, u_1, u_2, u_s, u_3 = (sampler.next_1d() for _ in range(5))
        if guide is not None:       # u = (u0, u1, u2) from the learned grid (pathspace_guiding.py)
            u0, u1, u2 = guide.draw(u, v, u_1, u_2)
            g0 = guide.pdf_marginal(u0)
        else:
            u0, u1, u2, g0 = u, u_1, u_2, mi.Float(1.0)
        idx, t, total = sample_by_length(measure, dr.minimum(u0, 0.99999994))
        half = dr.gather(mi.Float, mi.Float((Φ / 2).astype(np.float32)), idx)
        moving_edge = idx < edges.moving_count
        inv_share = dr.select(moving_edge, 1.0, 1.0 / static_weight if static_weight > 0 else 0.0)
        g = lambda v: dr.detach(dr.gather(type(v), v, idx))     # noqa: E731
        v0d, v1d, n0, n1 = g(edges.p0), g(edges.p1), g(edges.n0), g(edges.n1)
    with dr.resume_grad():
        m = dr.lerp(dr.gather(mi.Point3f, edges.p0, idx), dr.gather(mi.Point3f, edges.p1, idx), t)

    with dr.suspend_grad():
        md = dr.detach(m)
        # ω: one-sample MIS of the pencil and the light or camera strategy (the mixture density).
        frame = _pencil_frame(v1d - v0d, n0, n1)
        # The strategies' shares depend on the edge only: an emitter's own edges are found
        # through the camera (directions towards the emitter lie in its plane), the others
        # towards the emitters.
        own_light = dr.gather(mi.Bool, emitter_edge, idx)
        q_l = dr.select(own_light, 0.0, LIGHT_FRACTION if len(lights) else 0.0)
        q_c = dr.select(own_light, CAMERA_FRACTION, 0.0)
        ω = pencil_direction(frame, half, u1, u2)
        # camera strategy: through the first hit z of a camera ray (uniform on the film)
        ray_c, _ = sensor.sample_ray(sensor.shutter_open(), 0.5, mi.Point2f(u_1, u_2), mi.Point2f(0.5))
        by_camera = (u_s >= q_l) & (u_s < q_l + q_c)
        z = scene.ray_intersect(mi.Ray3f(ray_c), by_camera)
        ω = dr.select(by_camera, dr.normalize(md - z.p), ω)
        if len(lights):
            ω = dr.select(u_s < q_l, lights.sample(md, u_3, mi.Point2f(u_1, u_2)), ω)
        u1_ω, u2_ω, in_arc = pencil_coordinates(frame, half, ω)
        pdf_pencil = dr.select(in_arc, dr.rcp(4 * half), 0.0)
        if guide is not None:
            pdf_pencil *= guide.pdf(u0, u1_ω, u2_ω) / g0
        pdf_ω = (1 - q_l - q_c) * pdf_pencil + (q_l * lights.pdf(md, ω) if len(lights) else 0.0)
        sin_α = dr.norm(dr.cross(ω, frame[0]))
        # x_a: the first surface behind m along -ω (from just off the edge).
        offset = 1e-5 * (1 + dr.max(dr.abs(md)))
        si_a = scene.ray_intersect(mi.Ray3f(md - offset * ω, -ω))
        # Every strategy's outcomes off the pencil's arc are null (f is 0 there): the mixture
        # density is at least the pencil's share of 1/(4 half), and weights stay bounded.
        active = si_a.is_valid() & in_arc
        # x_a seen by the camera: the connection of walk vertex 0, and the camera strategy's density.
        # A camera ray's first hit z makes a non-null ω only where z is x_a (not hidden from m) and
        # is not seen edge-on from m: the density of those outcomes, a (defective) density in ω.
        cam0 = SensorConnection(scene, sensor, si_a, ω, sampler.next_2d(), active)
        r_a = dr.norm(md - si_a.p)
        cos_a = dr.abs(dr.dot(si_a.n, ω))
        seen = cos_a > GRAZING
        pdf_ω += q_c * dr.select(seen, cam0.area_pdf * r_a * r_a / dr.select(seen, cos_a, 1.0), 0.0)
        same = (z.shape == si_a.shape) & (z.prim_index == si_a.prim_index) & \
            (dr.norm(si_a.p - z.p) <= 1e-4 * (1 + dr.max(dr.abs(z.p))) + 1e-3 * r_a)
        active &= ~by_camera | (z.is_valid() & same & seen & (cam0.area_pdf > 0))
        own = (si_a.shape == dr.gather(mi.ShapePtr, scene.shapes_dr(), g(edges.shape_index))) & \
            ((si_a.prim_index == g(edges.prim0)) | (si_a.prim_index == g(edges.prim1)))
        active &= ~own          # (rounding: the line leaves the edge's own faces at m)
        on_mover = on_meshes(si_a.shape, movers, mi.Bool(True))
        # Static edges seen from a static x_a count only where x_a is one bounce
        # behind a moving camera vertex that holds it in solid angle (below).
        chain_only = ~(moving_edge | on_mover)
        active &= ~chain_only | solid_angle_bounce
        pd = si_a.p
        r = md - pd
        dist = dr.norm(r)
        active &= dist > 0
        n_c = si_a.sh_frame.n * dr.sign(mi.Frame3f.cos_theta(si_a.wi))
        view = edge_view(pd, n_c, v0d, n0, n1, g(edges.boundary), g(edges.facing))
        active &= view.candidate
        n_h = dr.normalize(dr.cross(v0d - pd, v1d - pd))
        e = v1d - v0d
        faces = adjacent_faces((g(edges.c0), g(edges.c1)), view.front, n_h, pd, md, e)
        # sin α / (N pdf), the pdf p(e, m) p(ω | m) with p(e, m) = share · 2Φ / T per unit length
        # (guided: the edge point's density times g0(u0))
        base = dr.select(pdf_ω > 0, sin_α * total * inv_share / (4 * half * g0 * dr.select(pdf_ω > 0, pdf_ω, 1.0)
                                                                 * count), 0.0)
        active &= pdf_ω > 0
        # Only the segments that can contribute go on (typically 40-70%): the
        # camera walks and side paths are traced for those alone.
        dr.eval(active, si_a, ω, cam0.pos, cam0.area_pdf, cam0.active, cam0.weight, cam0.origin, base, n_h,
                md, faces, view.horizon, moving_edge, on_mover, chain_only, u0, u1_ω, u2_ω)
        kept = dr.compress(active)
        n_kept = dr.width(kept)
        if n_kept == 0:
            if record is not None:      # (the grid still counts the call's segments)
                record += [mi.Float(0.0)] * 4
            return
        take = lambda v: dr.gather(type(v), v, kept)     # noqa: E731
        si_a, ω, cam0, base, n_h, md = take(si_a), take(ω), cam0.take(kept), take(base), take(n_h), take(md)
        pd = si_a.p
        r = md - pd
        dist = dr.norm(r)
        faces = [tuple(take(x) for x in face) for face in faces]
        horizon, moving_edge, on_mover, chain_only = (take(view.horizon), take(moving_edge), take(on_mover),
                                                      take(chain_only))
        u0, u1_ω, u2_ω = take(u0), take(u1_ω), take(u2_ω)
        active = dr.full(mi.Bool, True, n_kept)
        with dr.resume_grad():
            m = take(m)
        sampler = sensor.sampler().clone()
        sampler.seed(mi.sample_tea_32(s_edge, mi.UInt32(STREAM))[0], n_kept)
        dr.eval(si_a, r, dist, n_h, faces, horizon, base)

        side_ray = side_rays(lambda i, d: dr.gather(mi.SurfaceInteraction3f, si_a, i).spawn_ray(d),
                             r, dist, n_h, pd, faces, horizon)
        dr.eval(side_ray)

    magnitude = mi.Float(0.0)
    # The camera side: walk vertex j connects to the sensor; x_a is then camera-path vertex j.
    # ``walks`` walks leave x_a, each weighted 1/walks; they share x_a's sides at each j.
    states = [(si_a, mi.Vector3f(ω), mi.Spectrum(1.0), mi.Bool(active), None) for _ in range(walks)]
    # per walk, the shapes of its vertices so far (walk vertex 1 first) and
    # walk vertices 1 and 2 (x_a's predecessor on the camera path and the one
    # before it): where vertices hold their successor in solid angle
    shapes: list[list] = [[] for _ in range(walks)]
    near: list[list] = [[] for _ in range(walks)]
    connections: list[list] = []        # per walk vertex j, the walks' connections
    on_any = mi.Bool(False)
    with dr.suspend_grad():
        for j in range(depth - 1):
            conns = []
            for w_i in range(1 if j == 0 else walks):
                y, ω_light, β, walk_active, slide_ray = states[w_i]
                if j > 0:
                    y, w, ray, walk_active = walk_step(scene, y, ω_light, sampler.next_1d(), sampler.next_2d(),
                                                        walk_active)
                    β = β * w
                    ω_light = -ray.d
                    if j == 1:      # x_a slides along the ray from walk vertex 1
                        slide_ray = mi.Ray3f(y.p, dr.normalize(pd - y.p))
                    states[w_i] = (y, ω_light, β, walk_active, slide_ray)
                    shapes[w_i].append(y.shape)
                    if j <= 2:
                        near[w_i].append(y)
                cam = cam0 if j == 0 else SensorConnection(scene, sensor, y, ω_light, sampler.next_2d(), walk_active)
                weight = cam.weight * β * (1.0 if j == 0 else 1.0 / walks)
                on = cam.active & walk_active & dr.any(mi.unpolarized_spectrum(weight) != 0)
                held_a, chain = None, mi.Bool(False)
                if solid_angle_bounce:
                    # whether x_a holds its successor (the sides) in solid angle,
                    # and whether it moves with its predecessor that holds it
                    held_a, held_pred = _holds_along(scene, integrator, movers,
                                                     shapes[w_i][::-1] + [si_a.shape], on)
                    # (``movers``, found outside suspend_grad: a test for gradients
                    # here would find none)
                    chain = held_pred & on_meshes(near[w_i][0].shape, movers, on) if j >= 1 else chain
                    on &= ~chain_only | chain
                p_moves = on_mover | chain       # x_a moves (guiding's record)
                dr.eval(weight, on, cam.pos, cam.origin, y, β, walk_active, ω_light)
                conns.append((cam, weight, on, slide_ray, near[w_i], held_a, chain, p_moves))
                on_any |= on
            connections.append(conns)
        # x_a's sides, traced once for every j (the same paths cut to the depth left after j)
        L_minus, L_plus, d_minus, d_plus = trace_side_pairs(sensor, integrator,
                                                            _SideVertex(scene, integrator, depth - 1),
                                                            s_side, STREAM, side_ray, on_any)
    for j, conns in enumerate(connections):
        for cam, weight, on, slide_ray, pred, held_a, chain, p_moves in conns:
            with dr.suspend_grad():
                scale = weight * base
                A_m = dr.select(on, (L_minus[j] - L_plus[j]) * scale, 0.0)
                A_p = dr.select(on, (L_minus[j] * velocity_coefficient(d_minus, dist)
                                     - L_plus[j] * velocity_coefficient(d_plus, dist)) * (scale * dist), 0.0)
                A_p_area = A_p      # the guiding's record: as with first_bounce area
                if held_a is not None:   # both sides move with x_a: v = n_h·(ṁ - ṗ) / r
                    A_p = dr.select(held_a, -A_m, A_p)
                on &= dr.any(mi.unpolarized_spectrum(A_m) != 0) | dr.any(mi.unpolarized_spectrum(A_p) != 0)
                ray_p = mi.Ray3f(cam.origin, dr.normalize(pd - cam.origin)) if j == 0 else slide_ray
                si_slide = mi.SurfaceInteraction3f(si_a)
                si_slide.t = dr.norm(pd - ray_p.o)
                dr.eval(A_m, A_p, on)
                if record is not None:
                    # segments that can contribute (the edge or x_a moves)
                    a = mi.luminance(dr.abs(A_m)) + mi.luminance(dr.abs(A_p_area)) if mi.is_rgb else \
                        dr.abs(A_m[0]) + dr.abs(A_p_area[0])
                    magnitude += dr.select(moving_edge | p_moves, a, 0.0)
            with dr.resume_grad():
                p = sliding_point(scene, si_slide, ray_p, on)
                if held_a is not None and j >= 1:
                    # x_a lies along a ray that starts at its moving predecessor,
                    # itself along a ray from a point fixed in space (the camera,
                    # or the vertex before it)
                    o_pred = cam.origin if j == 1 else pred[1].p
                    pred_ray = mi.Ray3f(o_pred, dr.normalize(pred[0].p - o_pred))
                    o = dr.replace_grad(ray_p.o, sliding_point(scene, pred[0], pred_ray, on))
                    p = dr.select(chain, o + hit_distance(scene, si_a, o, ray_p.d, on) * ray_p.d, p)
            yield BoundarySamples(cam.pos, [(A_m, dr.dot(n_h, m)), (A_p, dr.dot(n_h, p))], on)
    if record is not None:
        with dr.suspend_grad():
            dr.eval(u0, u1_ω, u2_ω, magnitude)
            record += [u0, u1_ω, u2_ω, magnitude]


def _holds_along(scene: mi.Scene, integrator: mi.Integrator, movers: list, path: list,
                 active: mi.Bool) -> tuple[mi.Bool, mi.Bool]:
    """Along a camera path given by its vertices' shapes (the camera vertex
    first, x_a last), whether x_a holds its successor in solid angle and
    whether its predecessor holds x_a (``holds_next_in_solid_angle``)."""
    held, held_pred = mi.Bool(False), mi.Bool(False)
    back = [mi.Bool(False)] * integrator.solid_angle_chain
    for k, shape in enumerate(path):
        held_pred = held
        held = integrator.holds_next_in_solid_angle(scene, shape, mi.UInt32(k), back, movers, active)
        back = [held] + back[:-1]
    return held, held_pred


class PathSpaceEdges(BoundaryTerm):
    """The path-space boundary term (this module's docstring): ``pathspace``,
    ``spp_pathspace`` (boundary segments per pixel of the image; default the
    interior spp), ``pathspace_directions``, ``pathspace_guiding`` and
    ``pathspace_static``."""

    name = "pathspace"
    spp_divisor = 1
    settings = (
        Setting("pathspace_directions", "pencil",
                "how the direction through an edge point is drawn: pencil (the arc of the edge's plane "
                "pencil where it can be a discontinuity) or the baseline sphere (uniform)",
                lambda v: None if v in DIRECTIONS else f"must be one of {', '.join(DIRECTIONS)}"),
        Setting("pathspace_guiding", 16,
                "segments per pixel drawn uniformly before a grid over the boundary sample space, learned "
                "from the term's own samples, guides the rest (pathspace_guiding.py); 0: no guiding",
                lambda v: None if v >= 0 else "must be >= 0"),
        Setting("pathspace_walks", 1,
                "camera walks from each segment's shading point beyond its sensor connection (each "
                "weighted 1/walks; they share its side paths)",
                lambda v: None if v >= 1 else "must be >= 1"),
        Setting("pathspace_static", 0.25,
                "weight of static meshes' edges in the edge distribution, relative to moving ones (they "
                "count only where the segment's shading point moves; 0 leaves them out, biased)",
                lambda v: None if v >= 0 else "must be >= 0"),
    )

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
        yield from pathspace_samples(scene, sensor, integrator, seed, count, self.values["pathspace_directions"],
                                     self.values["pathspace_static"], self.values["pathspace_guiding"],
                                     walks=self.values["pathspace_walks"])
