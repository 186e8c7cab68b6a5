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
path-traced estimate (the interior integrator's primal ``sample``). A side
that is the limit of the radiance on one face (a silhouette's covered side,
both sides of a crease or of a terminator arc) starts at that point of that
face (``boundary.pinned_hits``): traced, rays to a face seen nearly edge-on
land on either side of its edge. Edges hidden behind other geometry give
the same radiance on both sides and drop out. A sample counts where the
film samples, with the film's normalization (``filter_footprint``).

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
from pbdr.geometry.edges import edge_barycentrics, scene_edges, silhouette_mask
from integrators.boundary import FacePoint, inside_face, moving_shapes, pinned_hits
from integrators.boundary.primary_terminators import TerminatorTable

SIDE_EPSILON = 1e-3   # pixels; offset of the two radiance samples from the edge


@dataclass
class FilterFootprint:
    """How a sample at a film position weighs into the pixels around it."""

    rfilter: mi.ReconstructionFilter
    taps: int                   # pixels per axis a footprint can touch
    lo: float                   # the sampled domain [lo, hi_x] x [lo, hi_y] of the film
    hi: tuple[float, float]
    norm: tuple[mi.Float, mi.Float] | float     # ∫ of the 1D profile over the domain, per column and row


_FOOTPRINTS: dict[int, tuple[tuple, FilterFootprint]] = {}


def filter_footprint(film: mi.Film) -> FilterFootprint:
    """A pixel is Σ k L / Σ k over the camera samples in its footprint, and
    the film samples [0, W] x [0, H], widened by the filter's border with
    ``sample_border``. So a sample weighs k_p(x) / ∫_domain k_p, where the
    integral is the filter's own except for pixels whose footprint the
    domain cuts (near the edges of a film without ``sample_border``)."""
    rfilter = film.rfilter()
    size = tuple(int(v) for v in film.crop_size())
    key = (rfilter, size, bool(film.sample_border()))
    # Keyed by the film; the entry holds its filter, so a new film at a recycled id has another one.
    cached = _FOOTPRINTS.get(id(film))
    if cached is not None and cached[0] == key:
        return cached[1]
    radius = float(rfilter.radius())
    t = (np.arange(4096) + 0.5) / 4096 * 2 * radius - radius
    profile = np.array(rfilter.eval(mi.Float(t)), dtype=np.float64) * (2 * radius / 4096)
    cdf = np.concatenate([[0.0], np.cumsum(profile)])
    taps = max(1, int(np.ceil(2 * radius - 1e-9)))
    if film.sample_border() or radius <= 0.5:
        border = float(rfilter.border_size()) if film.sample_border() else 0.0
        norm: tuple[mi.Float, mi.Float] | float = float(cdf[-1])
    else:
        border = 0.0
        def cut(n: int) -> mi.Float:
            c = np.arange(n) + 0.5
            a, b = np.maximum(-c, -radius), np.minimum(n - c, radius)
            at = lambda u: np.interp(u, np.linspace(-radius, radius, 4097), cdf)   # noqa: E731
            return mi.Float((at(b) - at(a)).astype(np.float32))
        norm = (cut(size[0]), cut(size[1]))
    fp = FilterFootprint(rfilter, taps, -border, (size[0] + border, size[1] + border), norm)
    _FOOTPRINTS[id(film)] = (key, fp)
    return fp


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
        x, n, X, s = _edge_points(cam, edges, clip, e_idx, ξ)
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
        dr.eval(xd, n, on_edge, faces, arc_sides)
        # Radiance on both sides: lanes 2i (side -n) and 2i+1 (side +n).
        lane = dr.arange(mi.UInt32, 2 * count)
        i = lane >> 1
        sign = dr.select((lane & 1) == 0, -1.0, 1.0)
        # Sides are evaluated wherever they fall (``footprint`` decides
        # whether a sample counts): masking a side outside the film made a
        # jump of every edge that crosses its border.
        xs = dr.gather(mi.Point2f, xd, i) + sign * SIDE_EPSILON * dr.gather(mi.Vector2f, n, i)
        size = mi.ScalarVector2f(cam.size)
        side_sampler = sensor.sampler().clone()
        side_sampler.seed(s_side, 2 * count)
        wavelength = side_sampler.next_1d() if mi.is_spectral else 0.0
        ray, ray_weight = sensor.sample_ray(sensor.shutter_open(), wavelength, xs / size, mi.Point2f(0.5))
        # A side covered by a front-facing adjacent face, and either side of
        # a terminator, is the radiance at a known point of a known face.
        on_edge_i = dr.gather(mi.Bool, on_edge, i)
        pin, target, aim = mi.Bool(False), dr.zeros(FacePoint, 2 * count), dr.zeros(mi.Point3f, 2 * count)
        for side, point, inner in faces:
            serves = on_edge_i & (dr.gather(mi.Float, side, i) == sign)
            pin |= serves
            target = dr.select(serves, dr.gather(FacePoint, point, i), target)
            aim = dr.select(serves, dr.gather(mi.Point3f, inner, i), aim)
        if len(terminators):
            arc_side = dr.select(sign < 0, dr.gather(FacePoint, arc_sides[0], i), dr.gather(FacePoint, arc_sides[1], i))
            target = dr.select(on_edge_i, target, arc_side)
            aim = dr.select(on_edge_i, aim, arc_side.p)
            pin |= ~on_edge_i
        ray, first = pinned_hits(scene, cam, target, aim, pin, ray)
        dr.eval(ray, ray_weight, first)
        L, _, _, _ = integrator.sample(dr.ADMode.Primal, scene, side_sampler, ray, None, None,
                                       mi.Bool(True), first=first)
        L = L * ray_weight
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
                 ξ: mi.Float) -> tuple[mi.Point2f, mi.Vector2f, mi.Point3f, mi.Float]:
    """Screen points (attached) at ``ξ`` along the clipped projections of edges
    ``idx``, their screen normals, the (detached) 3D points, and where these
    lie along the edges (0 at p0, 1 at p1)."""
    s, n = clipped_point(clip, idx, ξ)
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
    evaluated at the edge point itself (``pinned_hits``): a ray offset on
    screen would pass a face seen almost edge-on (a sliver thinner than any
    offset), and a point a fixed fraction inside the face can lie beyond a
    terminator arc that runs along the edge (measured: the smooth
    icosphere's limb). A ray that must be traced to the face (seen through
    a null interface) aims a thousandth of the face's width inside it.
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
    for k, c, nk, prim in ((1, g(edges.c1), g(edges.n1), g(edges.prim1)),
                           (0, g(edges.c0), g(edges.n0), g(edges.prim0))):
        front = dr.dot(nk, o - X) > 0
        point = FacePoint(X, shape_index, prim, edge_barycentrics(corners, k, s))
        faces.append((dr.select(front, dr.sign(dr.dot(N, c - o)) * σ, 0.0), point, inside_face(X, c, ê)))
    return faces


def channels(value: mi.Spectrum) -> list[mi.Float]:
    v = mi.unpolarized_spectrum(value)
    return [v[k] for k in range(3)] if mi.is_rgb else [v[0]]


def footprint(film: mi.Film, x: mi.Point2f):
    """Yield (flat pixel index, filter weight / ∫k, valid) for every pixel whose
    footprint holds x (``filter_footprint``; nothing for x outside the sampled domain)."""
    fp = filter_footprint(film)
    size = film.crop_size()
    radius = float(fp.rfilter.radius())
    x = dr.detach(x)
    sampled = (x.x >= fp.lo) & (x.y >= fp.lo) & (x.x <= fp.hi[0]) & (x.y <= fp.hi[1])
    lo = mi.Vector2i(dr.floor(x - radius - 0.5)) + 1
    for dy in range(fp.taps):
        for dx in range(fp.taps):
            pix = lo + mi.Vector2i(dx, dy)
            c = mi.Vector2f(pix) + 0.5
            valid = sampled & (pix.x >= 0) & (pix.y >= 0) & (pix.x < int(size[0])) & (pix.y < int(size[1]))
            if isinstance(fp.norm, float):
                norm = fp.norm * fp.norm
            else:
                norm = dr.gather(mi.Float, fp.norm[0], pix.x, valid) * dr.gather(mi.Float, fp.norm[1], pix.y, valid)
            w = fp.rfilter.eval(x.x - c.x) * fp.rfilter.eval(x.y - c.y) / norm
            valid &= w != 0
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
