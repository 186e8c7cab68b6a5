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
(each still uniform over the whole, so the sum stays unbiased; on the
emitting-cube scene block variance fell 2600x, on the icosphere 1.3x, and
consecutive lanes trace neighbouring side rays, which halved the side-path
kernel there). Each side's radiance is a full
path-traced estimate (the interior integrator's primal ``sample``). Edges
hidden behind other geometry give the same radiance on both sides and drop
out.

The derivative of the point is taken with Dr.Jit: the 3D edge point
:math:`X = v_0 + s (v_1 - v_0)` is built from the mesh's (AD-attached) vertex
buffer at a fixed :math:`s` and projected, so forward mode reads
:math:`\partial_\pi x` with ``dr.forward_to`` and reverse mode propagates
:math:`\sum_p \delta I_p\, \Delta L\, w\, k_p\, (n \cdot x)` with
``dr.backward_from``. A sample contributes to every pixel whose filter
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

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.camera import Camera, clip_edges, clipped_point
from pbdr.geometry.edges import scene_edges, silhouette_mask
from integrators.boundary import moving_shapes
from integrators.boundary.primary_terminators import TerminatorTable

SIDE_EPSILON = 1e-3   # pixels; offset of the two radiance samples from the edge


_FOOTPRINTS: dict[int, tuple[mi.ReconstructionFilter, float, int]] = {}


def filter_footprint(film: mi.Film) -> tuple[mi.ReconstructionFilter, float, int]:
    """The film's filter, the integral of its 1D profile, and pixels per axis it can touch."""
    rfilter = film.rfilter()
    cached = _FOOTPRINTS.get(id(rfilter))   # the entry holds the filter: its id stays unique
    if cached is not None and cached[0] is rfilter:
        return cached
    radius = float(rfilter.radius())
    x = (np.arange(4096) + 0.5) / 4096 * 2 * radius - radius
    integral = float(np.array(rfilter.eval(mi.Float(x))).sum() * 2 * radius / 4096)
    _FOOTPRINTS[id(rfilter)] = rfilter, integral, max(1, int(np.ceil(2 * radius - 1e-9)))
    return _FOOTPRINTS[id(rfilter)]


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
    margin = max(float(film.rfilter().radius()) - 0.5, 0.0)
    edges = scene_edges(scene)
    host = edges.numpy()
    # Only edges of meshes that move: a fixed edge's normal speed is zero.
    moving = moving_shapes(scene)
    sil = silhouette_mask(host["p0"], host["n0"], host["n1"], host["boundary"], cam.origin,
                          host["facing"]) & moving[host["shape"]]
    clip = clip_edges(cam, host["p0"], host["p1"], margin)
    terminators = TerminatorTable(scene, cam, margin, moving)
    E = len(edges)
    length = np.concatenate([np.where(sil, clip["length"], 0.0), terminators.length])
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
        e_idx = dr.minimum(idx, E - 1)
        x, n, X = _edge_points(cam, edges, clip, e_idx, ξ)
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
        faces = _face_sides(cam, edges, e_idx, X, xd, n) if E > 0 else []
        arc_sides = (arc.side_minus, arc.side_plus) if len(terminators) else ()
        dr.eval(xd, n, on_edge, faces, arc_sides)
        # Radiance on both sides: lanes 2i (side -n) and 2i+1 (side +n).
        lane = dr.arange(mi.UInt32, 2 * count)
        i = lane >> 1
        sign = dr.select((lane & 1) == 0, -1.0, 1.0)
        xs = dr.gather(mi.Point2f, xd, i) + sign * SIDE_EPSILON * dr.gather(mi.Vector2f, n, i)
        size = mi.ScalarVector2f(cam.size)
        inside = (xs.x >= 0) & (xs.y >= 0) & (xs.x <= size.x) & (xs.y <= size.y)
        side_sampler = sensor.sampler().clone()
        side_sampler.seed(s_side, 2 * count)
        wavelength = side_sampler.next_1d() if mi.is_spectral else 0.0
        ray, ray_weight = sensor.sample_ray(sensor.shutter_open(), wavelength, xs / size, mi.Point2f(0.5))
        on_edge_i = dr.gather(mi.Bool, on_edge, i)
        if E > 0:
            # A side covered by a front-facing adjacent face aims into that face.
            on_face, target = mi.Bool(False), dr.zeros(mi.Point3f, 2 * count)
            for side, point in faces:
                serves = dr.gather(mi.Float, side, i) == sign
                on_face |= serves
                target = dr.select(serves, dr.gather(mi.Point3f, point, i), target)
            ray[on_face & on_edge_i] = cam.ray_towards(target)
        if len(terminators):
            target = dr.select(sign < 0, dr.gather(mi.Point3f, arc_sides[0], i),
                               dr.gather(mi.Point3f, arc_sides[1], i))
            ray[~on_edge_i] = cam.ray_towards(target)
        dr.eval(ray, ray_weight, inside)
        L, _, _, _ = integrator.sample(dr.ADMode.Primal, scene, side_sampler, ray, None, None,
                                       mi.Bool(True))
        L = dr.select(inside, L * ray_weight, 0.0)
        dr.eval(L)      # all channels in one kernel: one by one, each would retrace the paths
        ΔL = dr.gather(mi.Spectrum, L, 2 * dr.arange(mi.UInt32, count)) - \
            dr.gather(mi.Spectrum, L, 2 * dr.arange(mi.UInt32, count) + 1)
        ΔL_w = ΔL * (weight * total / count)
        active = dr.any(ΔL != 0) & (weight != 0)
    return EdgeSamples(x, n, ΔL_w, active)


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


def _edge_points(cam: Camera, edges, clip: dict[str, np.ndarray], idx: mi.UInt32,
                 ξ: mi.Float) -> tuple[mi.Point2f, mi.Vector2f, mi.Point3f]:
    """Screen points (attached) at ``ξ`` along the clipped projections of edges
    ``idx``, their screen normals, and the (detached) 3D points."""
    s, n = clipped_point(clip, idx, ξ)
    # The edge point, attached to the mesh parameters, and its projection.
    X = dr.lerp(dr.gather(mi.Point3f, edges.p0, idx), dr.gather(mi.Point3f, edges.p1, idx), s)
    return cam.project(X), n, dr.detach(X)


def _face_sides(cam: Camera, edges, idx: mi.UInt32, X: mi.Point3f, x: mi.Point2f,
                n: mi.Vector2f) -> list[tuple[mi.Float, mi.Point3f]]:
    """For each adjacent face of edge samples ``idx``: the screen side (±1 along
    ``n``, 0 when the face is seen from behind) it covers, and a point inside it.

    A face seen almost edge-on is a sliver on screen, thinner than any
    screen-space offset: a ray offset on screen would pass it, see the next
    face, and count the sliver's jump twice (here and at the next crease).
    So a side covered by a front-facing adjacent face is sampled at a point
    inside that face, a small fraction of its width from the edge; a side
    with no adjacent face keeps the screen-space offset.
    """
    o = mi.ScalarPoint3f(cam.origin)
    g = lambda v: dr.detach(dr.gather(type(v), v, idx))       # noqa: E731
    p0, p1 = g(edges.p0), g(edges.p1)
    N = dr.normalize(dr.cross(p0 - o, p1 - o))                 # plane through the eye and the edge
    # Which screen side (±n) the +N half-space projects to, from a point well off the plane.
    probe = cam.project(X + N * (0.1 * dr.norm(X - o)))
    σ = dr.sign(dr.dot(probe - x, n))
    ê = dr.normalize(p1 - p0)
    faces = []
    for c, nk in ((g(edges.c1), g(edges.n1)), (g(edges.c0), g(edges.n0))):
        to_c = c - X
        point = X + (to_c - dr.dot(to_c, ê) * ê) * 1e-3      # inside the face, near the edge
        front = dr.dot(nk, o - X) > 0
        faces.append((dr.select(front, dr.sign(dr.dot(N, c - o)) * σ, 0.0), point))
    return faces


def channels(value: mi.Spectrum) -> list[mi.Float]:
    v = mi.unpolarized_spectrum(value)
    return [v[k] for k in range(3)] if mi.is_rgb else [v[0]]


def footprint(film: mi.Film, x: mi.Point2f):
    """Yield (flat pixel index, filter weight / ∫k, valid) for every pixel whose footprint holds x."""
    rfilter, integral, taps = filter_footprint(film)
    size = film.crop_size()
    radius = float(rfilter.radius())
    x = dr.detach(x)
    lo = mi.Vector2i(dr.floor(x - radius - 0.5)) + 1
    for dy in range(taps):
        for dx in range(taps):
            pix = lo + mi.Vector2i(dx, dy)
            c = mi.Vector2f(pix) + 0.5
            w = rfilter.eval(x.x - c.x) * rfilter.eval(x.y - c.y) / (integral * integral)
            valid = (pix.x >= 0) & (pix.y >= 0) & (pix.x < int(size[0])) & (pix.y < int(size[1])) & (w != 0)
            yield mi.UInt32(dr.select(valid, pix.y * int(size[0]) + pix.x, 0)), w, valid


def render_primary_forward(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                           seed: mi.UInt32, count: int) -> mi.TensorXf:
    """Forward mode: the primary-edge part of dI/dπ (π's tangent already set)."""
    film = sensor.film()
    size = film.crop_size()
    nch = film.base_channels_count()
    out = dr.zeros(mi.Float, int(size[0]) * int(size[1]) * nch)
    smp = sample_primary_edges(scene, sensor, integrator, seed, count)
    if smp is not None:
        dr.forward_to(smp.x, flags=dr.ADFlag.ClearInterior)  # keep the parameters' tangents
        v_n = dr.dot(smp.n, dr.grad(smp.x))
        with dr.suspend_grad():
            for pixel, w, valid in footprint(film, smp.x):
                for c, value in enumerate(channels(smp.ΔL_w)):
                    dr.scatter_reduce(dr.ReduceOp.Add, out, value * v_n * w, pixel * nch + c,
                                      valid & smp.active)
    return mi.TensorXf(out, (int(size[1]), int(size[0]), nch))


def render_primary_backward(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                            grad_in: mi.TensorXf, seed: mi.UInt32, count: int) -> None:
    """Reverse mode: accumulate Σ_p δI_p · (primary-edge part of dI_p/dπ) into π's gradient."""
    film = sensor.film()
    nch = film.base_channels_count()
    smp = sample_primary_edges(scene, sensor, integrator, seed, count)
    if smp is None:
        return
    with dr.suspend_grad():
        weight = mi.Float(0)
        flat = grad_in.array
        for pixel, w, valid in footprint(film, smp.x):
            for c, value in enumerate(channels(smp.ΔL_w)):
                weight += dr.select(valid & smp.active,
                                    value * w * dr.gather(mi.Float, flat, pixel * nch + c, valid), 0.0)
    # Keep the edges up to the parameters: other terms propagate through them too.
    dr.backward_from(weight * dr.dot(smp.n, smp.x), flags=dr.ADFlag.ClearInterior)
