"""Meshes that move with the parameters, and points that follow them.

A mesh *moves* when its vertex positions carry gradients (a shape, a
``to_world`` or an area-light parameter is being differentiated). The
interior term keeps camera rays fixed, so a point hit on a moving mesh
slides along its ray as the triangle moves: ``sliding_point`` and
``attached_interaction`` give that point (and its normals, uv and shading
frame) attached to the vertex buffer. Boundary terms use the same flags to
skip static geometry.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np


def moves(shape: mi.Shape) -> bool:
    """Whether a shape is a mesh whose vertex positions carry gradients (a flag test, no read-back)."""
    return shape.is_mesh() and dr.grad_enabled(shape.vertex_positions_buffer())


def moving_meshes(scene: mi.Scene) -> list:
    """Meshes whose vertex positions carry gradients."""
    return [s for s in scene.shapes() if moves(s)]


def moving_shapes(scene: mi.Scene) -> np.ndarray:
    """Per shape of ``scene`` (host bools): whether it is a moving mesh."""
    return np.array([moves(s) for s in scene.shapes()], dtype=bool)


def on_meshes(shape: mi.ShapePtr, meshes: list, active: mi.Bool) -> mi.Bool:
    """Whether each lane's ``shape`` is one of ``meshes``."""
    result = mi.Bool(False)
    for mesh in meshes:
        result |= shape == mi.ShapePtr(mesh)
    return result & active


def on_moving_mesh(scene: mi.Scene, shape: mi.ShapePtr, active: mi.Bool) -> mi.Bool:
    """Whether each lane's ``shape`` is a moving mesh (its points follow the
    parameters). Gradients must be visible here (not under ``suspend_grad``);
    where they are not, find ``moving_meshes`` first and use ``on_meshes``."""
    return on_meshes(shape, moving_meshes(scene), active)


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


def hit_distance(scene: mi.Scene, si: mi.SurfaceInteraction3f, o: mi.Point3f, d: mi.Vector3f,
                 active: mi.Bool) -> mi.Float:
    """Distance along ``d`` from ``o`` to the plane of the triangle ``si`` hit,
    attached to the vertex positions when its mesh moves (a static surface:
    the plane through ``si.p`` with normal ``si.n``)."""
    si = dr.detach(si)
    cos = dr.dot(si.n, d)
    t = dr.select(active & (cos != 0), dr.dot(si.n, si.p - o) / dr.select(cos != 0, cos, 1.0), 0.0)
    for shape in moving_meshes(scene):
        on = active & si.is_valid() & (si.shape == mi.ShapePtr(shape))
        t = dr.select(on, _slide(shape, si.prim_index, mi.Ray3f(o, d), on)[3], t)
    return t


def attached_interaction(scene: mi.Scene, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                         active: mi.Bool, material: mi.Float | None = None) -> mi.SurfaceInteraction3f:
    """``si`` (hit along the fixed ``ray``, detached) with its position, normals
    and shading frame attached to the vertex positions of moving meshes.

    The point slides along the ray (as ``sliding_point``), or, with weight
    ``material`` in [0, 1], partly follows the mesh's material point (fixed
    barycentrics) instead: both keep it on the moving surface; the shading normal
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
        if material is not None:    # barycentrics between the sliding point's and the material point's
            b1 = b1 - material * (b1 - dr.detach(b1))
            b2 = b2 - material * (b2 - dr.detach(b2))
            p = (1 - b1 - b2) * v[0] + b1 * v[1] + b2 * v[2]
            t = dr.dot(p - ray.o, ray.d)
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
