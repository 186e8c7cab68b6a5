r"""
Primary edges: the boundary term of silhouettes seen from the camera
====================================================================

A pixel is :math:`I_p = \int k_p(x)\, L(x)\, dx / \int k` over the image
plane (:math:`k_p` the pixel filter centred on pixel :math:`p`, :math:`L(x)`
the radiance along the *fixed* camera ray through :math:`x`). Where a mesh
edge is a silhouette (or an open-mesh boundary) as seen from the camera,
:math:`L` jumps across the projected edge. When the edge moves, the pixel
changes by (Li, Aittala, Durand, Lehtinen 2018, "Differentiable Monte Carlo
Ray Tracing through Edge Sampling", eq. 5)

.. math::

    \partial_\pi I_p^{\text{boundary}} = \int_{\text{edges}}
        \frac{k_p(x)}{\int k}\, \big(L(x - \epsilon n) - L(x + \epsilon n)\big)\,
        \big(n \cdot \partial_\pi x\big)\, d\ell(x),

with :math:`n` the unit screen-space normal of the projected edge and
:math:`n \cdot \partial_\pi x` the normal velocity of the edge point. The
integral is estimated by sampling a silhouette edge with probability
proportional to its projected length (clipped to the near plane and to the
image plus the filter radius) and a point uniformly on it, so every sample
has weight :math:`\ell_{\text{total}} / N`. The :math:`N` points are
stratified: with the edges laid end to end, sample :math:`i` is uniform in
the :math:`i`-th of :math:`N` equal parts of :math:`\ell_{\text{total}}`
(each still uniform over the whole, so the sum stays unbiased): the edges
get their share of samples without the variance of a random count, and
consecutive lanes trace neighbouring side rays (coherent). Each side's
radiance is a full path-traced estimate (the interior integrator's primal
``sample``); the two sides of a sample draw the same random numbers, so the
noise they share (the same light sample, the same occluders) cancels in
their difference. A side that is the limit of the radiance on one face (a
silhouette's covered side, both sides of a crease or of a terminator arc)
starts at that point of that face (``sides.pinned_hits``): traced, rays to
a face seen nearly edge-on land on either side of its edge. Edges hidden
behind other geometry give the same radiance on both sides and drop out. A
sample counts where the film samples, with the film's normalization
(``filter_footprint``).

The derivative of the point is taken with Dr.Jit: the 3D edge point
:math:`X = v_0 + s (v_1 - v_0)` is built from the mesh's (AD-attached) vertex
buffer at a fixed :math:`s` and projected, so forward mode reads
:math:`\partial_\pi x` with ``dr.forward_to`` and reverse mode propagates
:math:`\sum_p \delta I_p\, \Delta L\, w\, k_p\, (n \cdot x)` with
``dr.backward_from`` (``term.py``'s ``splat_forward`` and
``splat_backward``). A sample contributes to every pixel whose filter
footprint contains it.

Only meshes whose vertex positions carry derivatives are sampled (a fixed
edge has no normal speed). On smooth-shaded meshes the terminator arcs
inside triangles join the edges in the same length-proportional draw
(``primary_terminators.py``).

This pairs with an interior term whose camera rays are fixed (the primary
hit slides along the ray), as in ``pbdr_interior``. Perspective sensors and
RGB/mono variants only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.camera import Camera, clip_edges, clipped_point
from pbdr.geometry.edges import edge_barycentrics, scene_edges, silhouette_mask
from pbdr.geometry.moving import moving_shapes
from pbdr.integrators.boundary.sides import FacePoint, inside_face, judge_rays, pinned_hits
from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, filter_footprint
from pbdr.integrators.boundary.primary_terminators import TerminatorTable

SIDE_EPSILON = 1e-3   # pixels; how far a terminator arc's side points lie from the arc, at most
# A traced side's offset from the edge, per pixel of the film's width (1e-3 px
# at 1024, some 16 float ulps of the film position at any size): an offset
# fixed in pixels reaches further at low resolution, past the thin slivers
# where a fine mesh's contour passes over another of its own sheets.
TRACED_SIDE_OFFSET = 1e-6
# How far inside its face a pinned side's point lies, relative to 1 + max|X|
# (~170 float ulps at unit scale): the edge point itself can round to just
# inside a surface the mesh rests on, whose plane then stops every ray the
# side's path leaves by.
PIN_CLEARANCE = 1e-5


@dataclass
class EdgeSamples:
    x: mi.Point2f           # pixel position, attached to the geometry's parameters
    n: mi.Vector2f          # screen normal of the edge (detached)
    ΔL_w: mi.Spectrum       # (L(x - εn) - L(x + εn)) · ℓ_total / N (detached)
    active: mi.Bool


def sample_primary_edges(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                         seed: mi.UInt32, count: int) -> EdgeSamples | None:
    """Draw ``count`` points on projected silhouette edges (and shading
    terminators of smooth meshes) and the radiance jump across each."""
    cam = Camera.of(sensor)
    film = sensor.film()
    # Edges beyond the film reach its pixels through the filter, if the film samples there.
    margin = max(float(film.rfilter().radius()) - 0.5, 0.0) if film.sample_border() else 0.0
    edges = scene_edges(scene)
    host = edges.numpy()
    # Only edges of meshes that move: a fixed edge's normal speed is zero.
    moving = moving_shapes(scene)
    sil = silhouette_mask(host["p0"], host["n0"], host["n1"], host["boundary"], cam.origin,
                          host["facing"]) & moving[host["shape"]]
    # Only silhouettes are clipped and drawn (on a large smooth mesh, a few percent of the edges).
    chosen = np.nonzero(sil)[0]
    clip = clip_edges(cam, host["p0"][chosen], host["p1"][chosen], margin)
    terminators = TerminatorTable(scene, cam, margin, moving)
    E = len(chosen)
    length = np.concatenate([clip["length"], terminators.length])
    if not length.sum() > 0:
        return None

    with dr.suspend_grad():
        s_edge, s_side = mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(0x7ED6E5))
        sampler = sensor.sampler().clone()
        sampler.seed(s_edge, count)
        # Stratified along all edges laid end to end: lane i draws from the
        # i-th of ``count`` equal parts of the total length, so neighbouring
        # lanes trace neighbouring side rays (coherent) and the edges get
        # their share of samples without the variance of a random count.
        u = (mi.Float(dr.arange(mi.UInt32, count)) + sampler.next_1d()) * (1.0 / count)
        idx, ξ, total = sample_by_length(length, dr.minimum(u, 0.99999994))
        on_edge = idx < E
        weight = mi.Float(1.0)
    if E > 0:
        e_clip = dr.minimum(idx, E - 1)                                   # into ``clip``
        e_idx = dr.gather(mi.UInt32, mi.UInt32(chosen.astype(np.uint32)), e_clip)   # into ``edges``
        x, n, X, s = _edge_points(cam, edges, clip, e_clip, e_idx, ξ)
    if len(terminators):
        arc = terminators.points(cam, idx - E, ξ, ~on_edge, SIDE_EPSILON)
        if E > 0:
            x, n = dr.select(on_edge, x, arc.x), dr.select(on_edge, n, arc.n)
        else:
            x, n = arc.x, arc.n
        weight = dr.select(on_edge, 1.0, arc.weight)

    with dr.suspend_grad():
        # Everything the side lanes gather, in one kernel: gathered lazily,
        # each source would be a kernel of its own that recomputes the rest.
        xd = dr.detach(x)
        faces = _face_sides(cam, edges, e_idx, X, s, xd, n) if E > 0 else []
        arc_sides = arc.sides if len(terminators) else ()
        # The boundary point, whose visibility decides both sides' (``pinned_hits``).
        at = (dr.select(on_edge, X, arc.p) if len(terminators) else X) if E > 0 else arc.p
        judged = judge_rays(scene, cam, at, mi.Bool(True))     # both sides' visibility test, traced once
        dr.eval(xd, n, on_edge, faces, arc_sides, at, judged)
        L_minus, L_plus = (_side_radiance(scene, sensor, integrator, cam, s_side, xd, n, sign, on_edge,
                                          faces, arc_sides, at, judged) for sign in (-1.0, 1.0))
        ΔL = L_minus - L_plus
        ΔL_w = ΔL * (weight * total / count)
        active = dr.any(ΔL != 0) & (weight != 0)
    return EdgeSamples(x, n, ΔL_w, active)


def _side_radiance(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator, cam: Camera,
                   seed: mi.UInt32, x: mi.Point2f, n: mi.Vector2f, sign: float, on_edge: mi.Bool,
                   faces: list, arc_sides: tuple, at: mi.Point3f,
                   judged: tuple[mi.Ray3f, mi.PreliminaryIntersection3f]) -> mi.Spectrum:
    """The radiance on side ``sign`` (±1 along ``n``) of each sample (boundary
    point ``at``, seen from the camera as ``judged``: ``sides.judge_rays``).

    Both sides draw the same random numbers (a sampler with the same seed
    and width): what counts is their difference, and at a contour of a
    surface over more of itself, or across a terminator, both sides see
    much the same lights and occluders, so their noise largely cancels
    (common random numbers; each side's expectation is unchanged).
    """
    count = dr.width(x)
    # Sides are evaluated wherever they fall (``footprint`` decides whether a
    # sample counts): masking a side outside the film would make a jump of
    # every edge that crosses its border.
    size = mi.ScalarVector2f(cam.size)
    xs = x + sign * (TRACED_SIDE_OFFSET * dr.max(size)) * n
    sampler = sensor.sampler().clone()
    sampler.seed(seed, count)
    wavelength = sampler.next_1d() if mi.is_spectral else 0.0
    ray, ray_weight = sensor.sample_ray(sensor.shutter_open(), wavelength, xs / size, mi.Point2f(0.5))
    # A side covered by a front-facing adjacent face, and either side of a
    # terminator, is the radiance at a known point of a known face.
    pin, target, aim = mi.Bool(False), dr.zeros(FacePoint, count), dr.zeros(mi.Point3f, count)
    for side, point, inner in faces:
        serves = on_edge & (side == sign)
        pin |= serves
        target = dr.select(serves, point, target)
        aim = dr.select(serves, inner, aim)
    if arc_sides:
        arc_side = arc_sides[0] if sign < 0 else arc_sides[1]
        target = dr.select(on_edge, target, arc_side)
        aim = dr.select(on_edge, aim, arc_side.p)
        pin |= ~on_edge
    ray, first = pinned_hits(scene, cam, target, aim, pin, ray, judge=at, judged=judged)
    dr.eval(ray, ray_weight, first)
    L, _, _, _ = integrator.sample(dr.ADMode.Primal, scene, sampler, ray, None, None, mi.Bool(True), first=first)
    L = L * ray_weight
    dr.eval(L)      # all channels in one kernel: one by one, each would retrace the paths
    return L


def sample_by_length(length: np.ndarray, u: mi.Float) -> tuple[mi.UInt32, mi.Float, mi.Float]:
    """Entry i with probability length_i / ℓ_total for uniforms ``u``, the
    uniform rescaled to [0, 1) within it (``DiscreteDistribution.sample_reuse``),
    and ℓ_total. The CDF is summed on the host and uploaded once with the
    total: ℓ_total as data, since a literal would recompile the kernels
    whenever edges move; a device distribution costs several tasks more."""
    end = np.cumsum(length, dtype=np.float64)
    n = len(length)
    table = mi.Float(np.concatenate([end / end[-1], end[-1:]]).astype(np.float32))
    idx = dr.binary_search(0, n - 1, lambda i: dr.gather(mi.Float, table, i) <= u)
    hi = dr.gather(mi.Float, table, idx)
    lo = dr.select(idx > 0, dr.gather(mi.Float, table, idx - 1, idx > 0), 0.0)
    ξ = dr.clip((u - lo) / (hi - lo), 0.0, 0.99999994)
    return idx, ξ, dr.gather(mi.Float, table, mi.UInt32(n))


def _edge_points(cam: Camera, edges, clip: dict[str, np.ndarray], clip_idx: mi.UInt32, idx: mi.UInt32,
                 ξ: mi.Float) -> tuple[mi.Point2f, mi.Vector2f, mi.Point3f, mi.Float]:
    """Screen points (attached) at ``ξ`` along the clipped projections of edges
    ``idx`` (rows ``clip_idx`` of ``clip``), their screen normals, the
    (detached) 3D points, and where these lie along the edges (0 at p0, 1 at p1)."""
    s, n = clipped_point(clip, clip_idx, ξ)
    # The edge point, attached to the mesh parameters, and its projection.
    X = dr.lerp(dr.gather(mi.Point3f, edges.p0, idx), dr.gather(mi.Point3f, edges.p1, idx), s)
    return cam.project(X), n, dr.detach(X), s


def _face_sides(cam: Camera, edges, idx: mi.UInt32, X: mi.Point3f, s: mi.Float, x: mi.Point2f,
                n: mi.Vector2f) -> list[tuple[mi.Float, FacePoint, mi.Point3f]]:
    """For each adjacent face of edge samples ``idx`` (at ``s`` along them):
    the screen side (±1 along ``n``, 0 when the face is seen from behind) it
    covers, the edge point as a point of that face, and a point inside the
    face near it to aim at.

    That side's value is the limit of the radiance on the face at the edge,
    evaluated at a point of the face ``PIN_CLEARANCE`` off the edge point
    (``pinned_hits``): a ray offset on screen would pass a face seen almost
    edge-on (a sliver thinner than any offset), a point a fixed fraction
    inside the face can lie beyond a terminator arc that runs along the
    edge, and the edge point itself can lie inside a surface the mesh rests
    on. A ray that must be traced to
    the face (seen through a null interface) aims a thousandth of the face's
    width inside it.
    """
    o = mi.ScalarPoint3f(cam.origin)
    g = lambda v: dr.detach(dr.gather(type(v), v, idx))       # noqa: E731
    p0, p1 = g(edges.p0), g(edges.p1)
    N = dr.normalize(dr.cross(p0 - o, p1 - o))                 # plane through the eye and the edge
    # Which screen side (±n) the +N half-space projects to, from a point well off the plane.
    probe = cam.project(X + N * (0.1 * dr.norm(X - o)))
    σ = dr.sign(dr.dot(probe - x, n))
    ê = dr.normalize(p1 - p0)
    shape_index, corners = g(edges.shape_index), g(edges.corners)
    faces = []
    clearance = PIN_CLEARANCE * (1 + dr.max(dr.abs(X)))
    for k, c, nk, prim in ((1, g(edges.c1), g(edges.n1), g(edges.prim1)),
                           (0, g(edges.c0), g(edges.n0), g(edges.prim0))):
        front = dr.dot(nk, o - X) > 0
        # towards the centroid, ``clearance`` off the edge
        across = dr.norm((c - X) - dr.dot(c - X, ê) * ê)
        t = dr.minimum(clearance * dr.rcp(dr.maximum(across, 1e-30)), 0.5)
        uv = edge_barycentrics(corners, k, s)
        point = FacePoint(dr.lerp(X, c, t), shape_index, prim, dr.lerp(uv, mi.Point2f(1 / 3, 1 / 3), t))
        faces.append((dr.select(front, dr.sign(dr.dot(N, c - o)) * σ, 0.0), point, inside_face(X, c, ê)))
    return faces


class PrimaryEdges(BoundaryTerm):
    """The primary-edge term (this module's docstring): ``primary`` and
    ``spp_primary`` (default: a quarter of the interior spp)."""

    name = "primary"
    spp_divisor = 4

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
        smp = sample_primary_edges(scene, sensor, integrator, seed, count)
        if smp is not None:     # the sample adds ΔL_w · (n · ∂x)
            yield BoundarySamples(smp.x, [(smp.ΔL_w, dr.dot(smp.n, smp.x))], smp.active)
