"""Boundary terms of the derivative (each returns a derivative image in
forward mode and accumulates parameter gradients in reverse mode):
``primary_edges`` (silhouettes seen from the camera), ``secondary_edges``
(silhouettes seen from shading points), and the pieces they share."""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.camera import Camera


def sensor_of(scene: mi.Scene, sensor: int | mi.Sensor) -> mi.Sensor:
    """The sensor a ``render_forward/backward`` call names (an index or the sensor)."""
    return scene.sensors()[sensor] if isinstance(sensor, int) else sensor


def boundary_sample_count(sensor: mi.Sensor, per_pixel: int, spp: int, divisor: int) -> int:
    """Boundary samples for the whole image: ``per_pixel`` per pixel when set
    (> 0), else ``spp // divisor`` (at least 1), where ``spp`` is the call's
    interior spp. Composite integrators share this so their defaults agree."""
    n = per_pixel if per_pixel > 0 else max(1, spp // divisor)
    size = sensor.film().crop_size()
    return n * int(size[0]) * int(size[1])


def moves(shape: mi.Shape) -> bool:
    """Whether a shape is a mesh whose vertex positions carry gradients (a flag test, no read-back)."""
    return shape.is_mesh() and dr.grad_enabled(shape.vertex_positions_buffer())


def moving_meshes(scene: mi.Scene) -> list:
    """Meshes whose vertex positions carry gradients."""
    return [s for s in scene.shapes() if moves(s)]


def moving_shapes(scene: mi.Scene) -> np.ndarray:
    """Per shape of ``scene`` (host bools): whether it is a moving mesh."""
    return np.array([moves(s) for s in scene.shapes()], dtype=bool)


def on_moving_mesh(scene: mi.Scene, shape: mi.ShapePtr, active: mi.Bool) -> mi.Bool:
    """Whether each lane's ``shape`` is a moving mesh (its points follow the parameters)."""
    result = mi.Bool(False)
    for mesh in moving_meshes(scene):
        result |= shape == mi.ShapePtr(mesh)
    return result & active


def trace_side_pairs(sensor: mi.Sensor, integrator: mi.Integrator, vertex, seed: mi.UInt32, stream: int,
                     side_ray: mi.Ray3f, active: mi.Bool) -> tuple[mi.Spectrum, mi.Spectrum, mi.Float, mi.Float]:
    """The two sides of each sample at a path vertex (a ``secondary_edges.Vertex``),
    traced with the depth left after it: ``side_ray`` holds sample j's sides in
    lanes 2j (minus) and 2j + 1 (plus); ``active`` is per sample; ``stream``
    numbers the term's own random stream. Returns (L_minus, L_plus, d_minus,
    d_plus), d the distance to each side's first hit (as ``vertex.trace``)."""
    count = dr.width(side_ray.d) // 2
    i = dr.arange(mi.UInt32, 2 * count) >> 1
    side_sampler = sensor.sampler().clone()
    side_sampler.seed(mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(stream + vertex.k))[1], 2 * count)
    depth_left = integrator.max_depth - 1 - vertex.k if integrator.max_depth > 0 else -1
    L, d = vertex.trace(side_sampler, i, side_ray, depth_left, dr.gather(mi.Bool, active, i))
    dr.eval(L, d)   # together: evaluated one by one, each would retrace the side paths
    # Gathered from evaluated arrays, the rest is one kernel (from lazy ones, a kernel each).
    even = 2 * dr.arange(mi.UInt32, count)
    return (dr.gather(mi.Spectrum, L, even), dr.gather(mi.Spectrum, L, even + 1),
            dr.gather(mi.Float, d, even), dr.gather(mi.Float, d, even + 1))


@dataclass
class FacePoint:
    """A point of a known triangle (a Dr.Jit pytree: gather, select and zeros apply)."""

    p: mi.Point3f           # world position
    shape_index: mi.UInt32  # index into scene.shapes()
    prim: mi.UInt32         # the triangle's index in its mesh
    uv: mi.Point2f          # its barycentrics (b1, b2), Mitsuba's ``prim_uv``


def inside_face(x: mi.Point3f, c: mi.Point3f, ê: mi.Vector3f) -> mi.Point3f:
    """A point of the face with centroid ``c``, near ``x`` on its edge of
    direction ``ê``: a thousandth of the way across the face from the edge."""
    to_c = c - x
    return x + (to_c - dr.dot(to_c, ê) * ê) * 1e-3


PIN_DEPTH_TOLERANCE = 1e-3   # relative: a hit nearer than (1 - this) of the distance hides a pinned point


def pinned_hits(scene: mi.Scene, cam: Camera, point: FacePoint, aim: mi.Point3f, pin: mi.Bool,
                ray: mi.Ray3f) -> tuple[mi.Ray3f, mi.PreliminaryIntersection3f]:
    """Camera rays and their first intersections for sides that are limits of
    the radiance on a known face at a known point (where ``pin`` is set;
    other lanes keep ``ray`` and trace it).

    Traced, a ray aimed at a point on (or next to) an edge lands on whichever
    side float rounding puts it: on a face seen at a grazing angle, a ray
    that passes 10⁻⁷ of the distance from its target meets the plane 10⁻⁴
    away along the face (the smooth icosphere's limb: 14% of the rays aimed
    10⁻³ of a face's width inside it missed it, and that edge lost 13% of
    its term). So the hit is ``point`` itself (its triangle, barycentrics and
    distance), unless a ray towards it meets something clearly in front
    (nearer than ``(1 - PIN_DEPTH_TOLERANCE)`` of the distance): then the
    point is hidden and the side sees that occluder. An occluder that is a
    null interface (a medium's boundary) is crossed by the path, which must
    then find the face itself: that ray aims at ``aim``, inside the face.
    """
    towards = cam.ray_towards(point.p)
    t = dr.norm(point.p - towards.o)
    pi_x = scene.ray_intersect_preliminary(towards, coherent=True, reorder=False, active=pin)
    hidden = pin & pi_x.is_valid() & (pi_x.t < t * (1 - PIN_DEPTH_TOLERANCE))
    use = pin & ~hidden
    si = pi_x.compute_surface_interaction(towards, mi.RayFlags.Minimal, hidden)
    crossed = hidden & mi.has_flag(si.bsdf().flags(), mi.BSDFFlags.Null)
    ray = mi.Ray3f(ray)
    ray[pin & ~crossed] = towards
    ray[crossed] = cam.ray_towards(aim)
    pi = scene.ray_intersect_preliminary(ray, coherent=True, reorder=False, active=~pin | crossed)
    pi = dr.select(hidden & ~crossed, pi_x, pi)
    pinned = dr.zeros(mi.PreliminaryIntersection3f, dr.width(use))
    pinned.t, pinned.prim_uv, pinned.prim_index, pinned.shape_index = t, point.uv, point.prim, point.shape_index
    pinned.shape = dr.gather(mi.ShapePtr, scene.shapes_dr(), point.shape_index, use)
    pinned.valid = mi.Bool(True)
    return ray, dr.select(use, pinned, pi)


def ray_triangle(o: mi.Point3f, d: mi.Vector3f, v0: mi.Point3f, v1: mi.Point3f,
                 v2: mi.Point3f) -> tuple[mi.Float, mi.Float, mi.Float]:
    """Where the line o + t d meets the plane of triangle (v0, v1, v2): t and the
    barycentrics (b1, b2) of that point (Möller-Trumbore, no inside test),
    differentiable in all inputs: a fixed ray's hit point as the triangle moves."""
    e1, e2 = v1 - v0, v2 - v0
    pvec = dr.cross(d, e2)
    inv_det = dr.rcp(dr.dot(e1, pvec))
    tvec = o - v0
    qvec = dr.cross(tvec, e1)
    return dr.dot(e2, qvec) * inv_det, dr.dot(tvec, pvec) * inv_det, dr.dot(d, qvec) * inv_det


def _slide(shape: mi.Mesh, prim_index: mi.UInt32, ray: mi.Ray3f, on: mi.Bool):
    """Triangle ``prim_index`` of a moving mesh, attached: (face indices, vertices,
    unit face normal, distance along the fixed ``ray`` to its plane, and the
    barycentrics (b1, b2) of the point there)."""
    face = dr.gather(mi.Vector3u, shape.faces_buffer(), prim_index, on)
    v = [dr.gather(mi.Point3f, shape.vertex_positions_buffer(), face[i], on) for i in range(3)]
    n = dr.normalize(dr.cross(v[1] - v[0], v[2] - v[0]))
    t, b1, b2 = ray_triangle(ray.o, ray.d, *v)
    return face, v, n, t, (b1, b2)


def sliding_point(scene: mi.Scene, pi: mi.PreliminaryIntersection3f, ray: mi.Ray3f,
                  active: mi.Bool) -> mi.Point3f:
    """The hit point of a fixed ray, attached to the vertex positions of moving meshes.

    The point slides along ``ray`` as the hit triangle moves (the interior
    term's parameterization): p = o + t d with t from the triangle's plane.
    Written out per moving mesh rather than through
    ``compute_surface_interaction``, whose AD goes through a virtual call
    that forward mode cannot traverse once its inputs' edges were cleared.
    ``pi`` may also be a SurfaceInteraction3f (``t``, ``shape``, ``prim_index``).
    """
    p = mi.Point3f(dr.detach(ray(pi.t)))
    for shape in moving_meshes(scene):
        on = active & pi.is_valid() & (pi.shape == mi.ShapePtr(shape))
        t = _slide(shape, pi.prim_index, ray, on)[3]
        p = dr.select(on, ray.o + t * ray.d, p)
    return p


def attached_interaction(scene: mi.Scene, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                         active: mi.Bool) -> mi.SurfaceInteraction3f:
    """``si`` (hit along the fixed ``ray``, detached) with its position, normals
    and shading frame attached to the vertex positions of moving meshes.

    The point slides along the ray (as ``sliding_point``); the shading normal
    is the interpolated vertex normal (or the face normal) and uv the
    interpolated texture coordinates, both at the sliding point's
    barycentrics; the frame's tangents are re-orthogonalized to the normal,
    so values at θ = 0 are unchanged.
    Written out for the same reason as ``sliding_point``; a second
    ``compute_surface_interaction`` with AD in one loop body made forward
    mode fail ("edge ... outside of the current dr.isolate_grad() scope").
    """
    si = dr.detach(si)
    out = mi.SurfaceInteraction3f(si)
    for shape in moving_meshes(scene):
        on = active & si.is_valid() & (si.shape == mi.ShapePtr(shape))
        face, v, n_g, t, (b1, b2) = _slide(shape, si.prim_index, ray, on)
        n_g *= dr.sign(dr.dot(dr.detach(n_g), si.n))      # Mitsuba's orientation of si.n
        p = ray.o + t * ray.d
        n_s = n_g
        # (b1, b2): where on the face the fixed ray lands changes with the
        # face, and so do the normal and uv there.
        if shape.has_vertex_normals():
            nv = [dr.gather(mi.Vector3f, shape.vertex_normals_buffer(), face[i], on) for i in range(3)]
            n_s = dr.normalize((1 - b1 - b2) * nv[0] + b1 * nv[1] + b2 * nv[2])
            n_s *= dr.sign(dr.dot(dr.detach(n_s), si.sh_frame.n))
        if shape.has_vertex_texcoords():
            uv = [dr.gather(mi.Point2f, shape.vertex_texcoords_buffer(), face[i], on) for i in range(3)]
            out.uv = dr.select(on, dr.replace_grad(si.uv, (1 - b1 - b2) * uv[0] + b1 * uv[1] + b2 * uv[2]),
                               out.uv)
        s_t = dr.normalize(si.sh_frame.s - dr.dot(si.sh_frame.s, n_s) * n_s)
        frame = mi.Frame3f(s_t, dr.cross(n_s, s_t), n_s)
        out.p = dr.select(on, dr.replace_grad(si.p, p), out.p)
        out.t = dr.select(on, dr.replace_grad(si.t, t), out.t)
        out.n = dr.select(on, dr.replace_grad(si.n, n_g), out.n)
        out.sh_frame = dr.select(on, dr.replace_grad(si.sh_frame, frame), out.sh_frame)
    # The incident direction (local) follows the frame.
    out.wi = dr.replace_grad(si.wi, out.to_local(-ray.d))
    return out
