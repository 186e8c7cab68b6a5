r"""
Secondary edges: boundary terms at shading points (shadows, indirect occlusion)
===============================================================================

At a path vertex :math:`p = x_k` the reflected radiance is
:math:`\int_{S^2} f_s(\omega)\, |\cos\theta|\, L_i(p, \omega)\, d\omega`.
:math:`L_i` jumps across the directions of mesh edges that are silhouettes
(or open-mesh boundaries) as seen from :math:`p`. Following Li, Aittala,
Durand, Lehtinen 2018 (sec. 4.2, eq. 8-9) the boundary term is an integral
over the 3D edge :math:`m(t) = v_0 + t (v_1 - v_0)`:

.. math::

    \int_{\text{edge}} f_s(\omega)\, |\cos\theta|\,
        \big(L_-\, v_- - L_+\, v_+\big)\, \frac{\sin\alpha}{\lVert m - p \rVert}\, d\ell(m),

with :math:`\omega = (m - p) / \lVert m - p\rVert`, :math:`\alpha` the angle
between :math:`\omega` and the edge, :math:`n_h` the unit normal of the plane
through :math:`p` and the edge, :math:`L_\mp` the radiance arriving just on
either side (rays towards :math:`m \mp \epsilon n_h`, each traced with full
path tracing) and :math:`v_\mp` the velocity, along :math:`n_h` in direction
space, of the boundary of the region each side belongs to.

The velocities follow the parameterization of ``pbdr_interior`` (it must,
for interior + boundary to be the derivative): a moving vertex :math:`p`
keeps the *next* vertex fixed on its surface (area measure), and a surface
point hit along a ray slides along that ray. So

- a side whose ray hits the edge's own faces at :math:`m` (the occluder
  side) ends at the mesh edge: :math:`v = n_h \cdot \dot m / \lVert m-p\rVert`;
- a side that passes the edge and hits a surface at distance :math:`d`
  (or nothing, :math:`d = \infty`: environment directions are fixed) sees
  an occlusion boundary: :math:`v = n_h \cdot (\dot m - \dot p)/\lVert m-p\rVert
  + n_h \cdot \dot p / d`.

For a static :math:`p` both reduce to Li et al.'s :math:`n_h\cdot\dot m /
\lVert m-p\rVert`. Where ``pbdr_edge``'s ``first_bounce`` holds the vertex
after the camera vertex in solid angle (its ray keeps its direction and
moves with :math:`p`), both sides at the camera vertex move with
:math:`p`: :math:`v = n_h \cdot (\dot m - \dot p)/\lVert m-p\rVert`, and
the vertex after it moves with the camera vertex too. Edges hidden behind
other geometry have equal radiance and velocity on both sides and drop out.

A vertex on a smooth-shaded face sees that face edge-on: its own edges
bound the vertex's horizon (``edge_sampling.edge_view``), and their
side rays leave parallel to the face, from Mitsuba's offset origins above
and below it. The shading terminators of smooth meshes, discontinuities
inside faces, are sampled beside the edges (``secondary_terminators.py``).

Sampling: a camera path (the same number from every pixel, lanes in pixel
order; BSDF sampling, throughput :math:`\beta_k`) is walked
to vertex :math:`k` for each :math:`k < \text{max\_depth} - 1`; at
:math:`x_k` an edge and a point on it are drawn by ``EdgeSampler``
(``edge_sampling.py``: per-point importance over the candidate edges, or
the uniform baseline); the two side paths get the remaining depth.
Contributions are splatted with the film's filter at the camera sample
position (``term.py``). Velocities come from Dr.Jit: :math:`m` is built
from the AD-attached vertex buffer, :math:`p` is the surface interaction
recomputed with AD along the (detached) ray as the interior integrator
does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import drjit as dr
import mitsuba as mi

from pbdr.geometry.edges import scene_edges
from pbdr.geometry.moving import hit_distance, moving_meshes, on_meshes, sliding_point
from pbdr.integrators.boundary.sides import trace_side_pairs
from pbdr.integrators.boundary.edge_sampling import (DEFAULT_CANDIDATES, DEFAULT_TERMINATOR_CANDIDATES,
                                                      DEFAULT_TERMINATOR_FRACTION, EdgeSampler, SamplingOptions)
from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, Setting, walk_depth
from pbdr.integrators.boundary.secondary_terminators import TerminatorSampler, smooth_face_set, terminator_samples_at

SIDE_EPSILON = 1e-4     # angular offset of the side rays (radians)
NEAR_TOLERANCE = 1e-2   # a side hit within this relative distance of m is "at the edge"
INNER_DEPTH = 1e-3      # how far towards an adjacent face's centroid its side ray aims, at least
INNER_DEPTH_MAX = 0.1   # ... and at most
INNER_ANGLE = 1e-5      # ... so that the aim is this angle off the plane (p, edge) (``adjacent_faces``)


def trace_sides(integrator: mi.Integrator, scene: mi.Scene, sampler: mi.Sampler, p_ray: mi.Ray3f,
                depth_left: int, active: mi.Bool, **kwargs) -> tuple[mi.Spectrum, list]:
    """Radiance along rays with ``depth_left`` segments, and the integrator's
    AOVs (``kwargs`` go to its ``sample``, e.g. the ``medium`` the rays start in)."""
    saved = integrator.max_depth, integrator.hide_emitters
    # (-1: unbounded, which Mitsuba's integrators hold as 2^32 - 1)
    integrator.max_depth, integrator.hide_emitters = depth_left if depth_left >= 0 else 0xFFFFFFFF, False
    try:
        L, _, aovs, _ = integrator.sample(dr.ADMode.Primal, scene, sampler, p_ray, None, None, active, **kwargs)
    finally:
        integrator.max_depth, integrator.hide_emitters = saved
    return L, aovs


@dataclass
class Vertex:
    """Path vertex k of ``count`` camera paths, where one secondary edge is sampled.

    A walker (``surface_vertices`` here, a volumetric one in ``pbdr_volume``)
    yields these; ``edge_samples_at`` does the rest. Fields are detached but
    ``position()``, which follows the parameters as the interior term moves
    the vertex.
    """

    k: int
    pos: mi.Point2f                       # pixel position of the camera sample
    β: mi.Spectrum                        # throughput of the camera path up to the vertex
    p: mi.Point3f                         # position (detached)
    position: Callable[[], mi.Point3f]    # position, AD-attached
    n: mi.Vector3f                        # normal on the arriving side (medium vertex: any)
    clip: mi.Bool                         # only directions above n count (no transmission)
    f: Callable[[mi.Vector3f, mi.Bool], mi.Spectrum]          # BSDF·cos / phase value towards ω
    spawn: Callable[[mi.UInt32, mi.Vector3f], mi.Ray3f]       # side ray of lane's vertex towards d
    trace: Callable[[mi.Sampler, mi.UInt32, mi.Ray3f, int, mi.Bool], tuple[mi.Spectrum, mi.Float]]
    active: mi.Bool
    moves: mi.Bool                        # the vertex follows the parameters (on a moving mesh)
    # Lanes where the interior term holds the next vertex in solid angle from
    # this one rather than fixed in space (``pbdr_edge``'s ``first_bounce``
    # and ``solid_angle_after``); None: none.
    next_in_solid_angle: mi.Bool | None = None


def holds_first_bounce_in_solid_angle(integrator: mi.Integrator) -> bool:
    """Whether the integrator's interior term may hold the vertex after the
    camera vertex in solid angle (``first_bounce``; see ``first_bounce_mask``
    for where): the boundary terms' velocities must follow."""
    return getattr(integrator, "first_bounce", "area") != "area"


def camera_sample(sensor: mi.Sensor, sampler: mi.Sampler) -> tuple[mi.Point2f, mi.Ray3f, mi.Spectrum]:
    """A camera ray per lane: its pixel position, the ray and its weight (detached).

    When the lanes are a multiple of the pixels, every pixel gets the same
    number, lane i in pixel i // (lanes per pixel): stratified by pixel (no
    variance from how many samples a pixel gets), and neighbouring lanes see
    nearby points, so the edge scans of a SIMD packet branch alike. Else
    the positions are uniform over the image.
    """
    size = mi.ScalarVector2f(sensor.film().crop_size())
    width, pixels = int(size[0]), int(size[0]) * int(size[1])
    count = sampler.wavefront_size()
    if count % pixels == 0:
        pixel = dr.arange(mi.UInt32, count) // (count // pixels)
        pos = mi.Point2f(mi.Float(pixel % width), mi.Float(pixel // width)) + sampler.next_2d()
    else:
        pos = sampler.next_2d() * size
    ray, ray_weight = sensor.sample_ray(sensor.shutter_open(), 0.5 if not mi.is_spectral
                                        else sampler.next_1d(), pos / size, mi.Point2f(0.5))
    return pos, mi.Ray3f(ray), mi.Spectrum(ray_weight)


def surface_vertices(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                     sampler: mi.Sampler, count: int, depth: int) -> Iterator[Vertex]:
    """Vertices 0 .. depth - 1 of ``count`` camera paths, walked once by BSDF sampling."""
    ctx = mi.BSDFContext()
    directional = holds_first_bounce_in_solid_angle(integrator)
    with dr.suspend_grad():
        pos, ray, β = camera_sample(sensor, sampler)
        active = mi.Bool(True)
        pi = scene.ray_intersect_preliminary(ray, coherent=True, active=active)
    with dr.resume_grad():
        moving = moving_meshes(scene)
    # the vertices before this one, newest first: (hit, ray, interaction,
    # holds its successor in solid angle)
    back: list[tuple] = []
    chain_length = getattr(integrator, "solid_angle_chain", 1)
    prev_moves = mi.Bool(False)
    for k in range(depth):
        with dr.suspend_grad():
            si = pi.compute_surface_interaction(ray, mi.RayFlags.All, active)
            dr.eval(si)     # one kernel for all fields (gathered per field later)
            active &= si.is_valid()
            bsdf = si.bsdf(ray)
        def position(pi=pi, ray=ray, active=mi.Bool(active), si=si,
                     chain=list(reversed(back[:chain_length + 1]))) -> mi.Point3f:
            with dr.resume_grad():
                # slides along the detached ray, or, after vertices that hold
                # their successor in solid angle, along a ray from the moving
                # previous vertex (recomputed the same way, oldest first)
                origin, held = None, None
                for pi_j, ray_j, si_j, held_j in chain + [(pi, ray, si, None)]:
                    p = sliding_point(scene, pi_j, ray_j, active)
                    if origin is not None:
                        o = dr.replace_grad(ray_j.o, origin)
                        p = dr.select(held, o + hit_distance(scene, si_j, o, ray_j.d, active) * ray_j.d, p)
                    origin, held = p, held_j
                return p

        def f(ω: mi.Vector3f, act: mi.Bool, si=si, bsdf=bsdf) -> mi.Spectrum:
            return bsdf.eval(ctx, si, si.to_local(ω), act)

        def spawn(lanes: mi.UInt32, d: mi.Vector3f, si=si) -> mi.Ray3f:
            return dr.gather(mi.SurfaceInteraction3f, si, lanes).spawn_ray(d)

        def trace(side_sampler: mi.Sampler, lanes: mi.UInt32, ray: mi.Ray3f, depth_left: int,
                  act: mi.Bool) -> tuple[mi.Spectrum, mi.Float]:
            # pbdr_interior's paths report their first hit: no second ray cast.
            # Side rays of neighbouring lanes go to different edges: traced as
            # incoherent rays (Embree's packet traversal is slow for unlike rays).
            L, (d,) = trace_sides(integrator, scene, side_sampler, ray, depth_left, act, first_hit=True,
                                  coherent=False)
            return L, d

        # The shading normal on the side the path arrives from, and whether
        # the BSDF can transmit (then edges below the surface count too).
        n_c = si.sh_frame.n * dr.sign(mi.Frame3f.cos_theta(si.wi))
        clip = ~mi.has_flag(bsdf.flags(), mi.BSDFFlags.Transmission)
        moves = on_meshes(si.shape, moving, active)     # (``moving``: found where gradients are visible)
        held = None
        if directional:
            held_before = [h for *_, h in back] + [mi.Bool(False)] * chain_length
            held = integrator.holds_next_in_solid_angle(scene, si.shape, mi.UInt32(k), held_before, moving, active)
            # held in solid angle from a moving vertex, it moves with that one
            moves |= held_before[0] & prev_moves & active
        yield Vertex(k, pos, β, si.p, position, n_c, clip, f, spawn, trace, mi.Bool(active), moves,
                     next_in_solid_angle=held)
        if k + 1 == depth:
            return
        with dr.suspend_grad():   # next vertex by BSDF sampling
            bs, w = bsdf.sample(ctx, si, sampler.next_1d(), sampler.next_2d(), active)
            β = β * w
            active &= dr.any(mi.unpolarized_spectrum(β) != 0)
            prev_moves = moves
            back = [(pi, ray, si, held if held is not None else mi.Bool(False))] + back
            ray = si.spawn_ray(si.to_world(bs.wo))
            pi = scene.ray_intersect_preliminary(ray, coherent=False, active=active)
            dr.eval(pi, ray, β, active)


def adjacent_faces(c: tuple[mi.Point3f, mi.Point3f], front: tuple[mi.Bool, mi.Bool], n_h: mi.Vector3f,
                   pd: mi.Point3f, md: mi.Point3f, e: mi.Vector3f) -> list[tuple[mi.Point3f, mi.Bool, mi.Float]]:
    """For each face adjacent to the edge (direction ``e``; ``c``: the faces'
    centroids, ``front``: seen from the front, as ``EdgeView.front``) sampled at
    m = ``md`` from p = ``pd`` (``n_h``: the normal of the plane through p and
    the edge): a point inside the face near m, whether it covers a side (seen
    from the front, not edge-on) and which side of that plane it lies on.
    (If p is on one of the edge's faces, the sample is on p's own horizon,
    and the sides are above and below that face: ``EdgeView.horizon``.)

    The point lies a thousandth of the way towards the face's centroid, or
    deeper (up to ``INNER_DEPTH_MAX``) where the face is seen so nearly
    edge-on that this would lie within ``INNER_ANGLE`` |m - p| of the plane:
    the small faces of a fine mesh seen at its silhouette, where a ray aimed
    at a point that close to the edge slips past both faces (rounding) and
    the jump is lost."""
    faces = []
    dist = dr.norm(md - pd)
    for c_k, front_k in ((c[1], front[1]), (c[0], front[0])):
        side = dr.sign(dr.dot(n_h, c_k - pd))
        to_c = c_k - md                               # (m + f to_c is in the face for f in [0, 1])
        rise = dr.abs(dr.dot(n_h, to_c))              # its distance from the plane (p, edge)
        depth = dr.clip(INNER_ANGLE * dist / dr.maximum(rise, 1e-30), INNER_DEPTH, INNER_DEPTH_MAX)
        faces.append((md + depth * to_c, front_k & (side != 0), side))
    return faces


def side_rays(spawn: Callable[[mi.UInt32, mi.Vector3f], mi.Ray3f], r: mi.Vector3f, dist: mi.Float,
              n_h: mi.Vector3f, pd: mi.Point3f, faces: list, horizon: mi.Bool) -> mi.Ray3f:
    """The two side rays of each sample from p = ``pd`` towards m = p + ``r``
    (``dist`` = |r|): lanes 2i (minus) and 2i + 1 (plus), towards
    m ∓ ε |r| n_h, or into an adjacent face that covers that side
    (``adjacent_faces``); on p's own horizon parallel to its face.
    ``spawn(i, d)`` is the ray from sample i's point in direction d."""
    count = dr.width(dist)
    lane = dr.arange(mi.UInt32, 2 * count)
    i = lane >> 1
    sign = dr.select((lane & 1) == 0, -1.0, 1.0)
    g = lambda v: dr.gather(type(v), v, i)     # noqa: E731
    r2 = g(r) + sign * (SIDE_EPSILON * g(dist)) * g(n_h)
    side_ray = spawn(i, dr.normalize(r2))
    # Aim from the offset origin: spawn_ray's offset (~1e-4 |p|) can exceed
    # the side offset and put both rays on one side of the edge.
    target = g(pd) + r2
    # A side covered by an adjacent face seen from the front aims into that
    # face: a face seen edge-on is thinner than the angular offset.
    for inner, front, side in faces:
        serves = g(front) & (g(side) == sign)
        target = dr.select(serves, g(inner), target)
    # On p's horizon the offset origins are already above and below the
    # face: aimed from there at a point 1e-4 rad off an edge closer than
    # the offset, both rays would cross the face's plane and hit the mesh
    # next to the edge (fireflies on smooth meshes).
    side_ray.d = dr.select(g(horizon), dr.normalize(r2), dr.normalize(target - side_ray.o))
    return side_ray


def velocity_coefficient(d_side: mi.Float, dist: mi.Float) -> mi.Float:
    """A side's coefficient c_p of n_h·ṗ in its velocity v = c_m (n_h·ṁ) + c_p (n_h·ṗ)
    (``d_side``: the distance to the side's first hit, ``dist`` = |m - p|)."""
    near = dr.abs(d_side - dist) < NEAR_TOLERANCE * dist
    return dr.select(near, 0.0, dr.select(dr.isinf(d_side), 0.0, dr.rcp(d_side)) - dr.rcp(dist))


def edge_samples_at(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator, edges,
                    edge_sampler: EdgeSampler, sampler: mi.Sampler, seed: mi.UInt32, count: int,
                    vertex: Vertex):
    """One edge sample at each path's ``vertex``.

    Returns (pixel position, [(A_m, n_h·m), (A_p, n_h·p)], valid): the
    boundary value is A_m · (n_h·m) + A_p · (n_h·p) (A detached Spectra,
    m and p attached).
    """
    size = mi.ScalarVector2f(sensor.film().crop_size())
    active = mi.Bool(vertex.active)
    with dr.suspend_grad():
        pd = vertex.p
        smp = edge_sampler.sample(pd, vertex.n, vertex.clip, sampler.next_1d(), sampler.next_1d(),
                                  sampler.next_1d(), sampler.next_1d(), active, vertex.moves)
        idx, active = smp.index, active & smp.active
    with dr.resume_grad():
        p = vertex.position()
        v0 = dr.gather(mi.Point3f, edges.p0, idx)
        v1 = dr.gather(mi.Point3f, edges.p1, idx)
        m = dr.lerp(v0, v1, smp.t)
    with dr.suspend_grad():
        md, v0d, v1d = dr.detach(m), dr.detach(v0), dr.detach(v1)
        view = smp.view
        active &= view.candidate
        e = v1d - v0d
        r = md - pd
        dist = dr.norm(r)
        ω = r / dist
        n_h = dr.normalize(dr.cross(v0d - pd, v1d - pd))
        sin_α = dr.norm(dr.cross(ω, dr.normalize(e)))
        inv_pdf = smp.inv_pdf
        f = vertex.f(ω, active)
        active &= dr.any(mi.unpolarized_spectrum(f) != 0) & (dist > 0)
        scale = vertex.β * f * (sin_α / dist * inv_pdf)

        c = tuple(dr.detach(dr.gather(mi.Point3f, c_k, idx)) for c_k in (edges.c0, edges.c1))
        faces = adjacent_faces(c, view.front, n_h, pd, md, e)
        horizon = view.horizon
        # One kernel for everything the side lanes gather: gathered lazily,
        # each source would be a kernel of its own that recomputes the rest.
        dr.eval(r, dist, n_h, pd, scale, active, faces, horizon)

        # The two sides, traced with the remaining depth.
        side_ray = side_rays(vertex.spawn, r, dist, n_h, pd, faces, horizon)
        L_minus, L_plus, d_minus, d_plus = trace_side_pairs(sensor, integrator, vertex, seed, 0x5EC0,
                                                            side_ray, active)

        # L_- v_- - L_+ v_+, with c_m = 1 / |m - p| on both sides
        A_m = (L_minus - L_plus) * (scale * dr.rcp(dist))
        A_p = (L_minus * velocity_coefficient(d_minus, dist) - L_plus * velocity_coefficient(d_plus, dist)) * scale
        if vertex.next_in_solid_angle is not None:
            # held in solid angle, both sides' regions move with p: v = n_h·(ṁ - ṗ) / |m - p|
            A_p = dr.select(vertex.next_in_solid_angle, -A_m, A_p)
        A_m = dr.select(active, A_m, 0.0)
        A_p = dr.select(active, A_p, 0.0)
        area = float(size[0] * size[1]) / count   # pixel-area weight of one camera sample
        A_m, A_p = A_m * area, A_p * area
        dr.eval(A_m, A_p, n_h, active)
    return vertex.pos, [(A_m, dr.dot(n_h, m)), (A_p, dr.dot(n_h, p))], active


def samples_per_vertex(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                       seed: mi.UInt32, count: int, options: SamplingOptions,
                       walker: Callable[..., Iterator[Vertex]] = surface_vertices) -> Iterator[tuple]:
    """Boundary samples at path vertex k = 0, 1, ... (up to max_depth - 1; 8 when
    unbounded) of one set of ``count`` camera paths: an edge sample, and a
    terminator sample when the scene has smooth-shaded meshes
    (``secondary_terminators.py``). Each is (pixel position, [(A, q)], valid)
    with boundary value Σ A·q (A detached, q attached)."""
    depth = walk_depth(integrator)
    if depth < 2:
        return
    edges = scene_edges(scene)
    smooth = smooth_face_set(scene)
    if len(edges) == 0 and smooth is None:
        return
    edge_sampler = EdgeSampler(scene, edges, options) if len(edges) else None
    term_sampler = (TerminatorSampler(smooth, options.terminator_candidates, options.terminator_fraction)
                    if smooth is not None else None)
    with dr.suspend_grad():
        s_path = mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(0x5EC0))[0]
        sampler = sensor.sampler().clone()
        sampler.seed(s_path, count)
    for vertex in walker(scene, sensor, integrator, sampler, count, depth - 1):
        if edge_sampler is not None:
            yield edge_samples_at(scene, sensor, integrator, edges, edge_sampler, sampler, seed, count, vertex)
        if term_sampler is not None:
            yield terminator_samples_at(sensor, integrator, smooth, term_sampler, sampler, seed, count, vertex)


class SecondaryEdges(BoundaryTerm):
    """The secondary-edge term (this module's docstring) on the paths of
    ``walker``: ``secondary``, ``spp_secondary`` (camera paths per pixel;
    default an eighth of the interior spp) and the sampling settings."""

    name = "secondary"
    spp_divisor = 8
    settings = (
        Setting("edge_sampling", "importance",
                "how an edge and a point on it are drawn at a vertex: importance (per point), "
                "or the baseline uniform (one edge uniformly, a point uniformly on it)"),
        Setting("edge_candidates", DEFAULT_CANDIDATES,
                "edges weighed per vertex (a random strided subset when there are more; 0: all)"),
        Setting("terminator_candidates", DEFAULT_TERMINATOR_CANDIDATES,
                "smooth faces weighed per vertex for a terminator arc (0: all)"),
        Setting("terminator_fraction", DEFAULT_TERMINATOR_FRACTION,
                "share of vertices, drawn per lane, that take a terminator sample (weighted 1/q)"),
    )
    #: The camera paths whose vertices see the edges (``Vertex`` objects).
    walker: Callable[..., Iterator[Vertex]] = staticmethod(surface_vertices)

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        v = self.values
        self.options = SamplingOptions(v["edge_sampling"], v["edge_candidates"],   # checks them
                                       v["terminator_candidates"], v["terminator_fraction"])

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
        for pos, terms, active in samples_per_vertex(scene, sensor, integrator, seed, count, self.options,
                                                     self.walker):
            yield BoundarySamples(pos, terms, active)
