"""Continuing a ray through a null surface (a medium boundary) on the same line."""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

CLEARANCE = 0.1       # distance from the surface's plane after the step, in ray offsets h
MAX_STEP = 1.0        # the step along the ray is at most this many h (spawn_ray's own shift)
MIN_CLEARANCE = 0.01  # near-tangent rays: least distance from the plane, in h


def pass_through(ray: mi.Ray3f, si: mi.SurfaceInteraction3f) -> mi.Ray3f:
    """The ray past ``si`` (hit along ``ray``), on the same line.

    ``si.spawn_ray(ray.d)`` moves the origin along the surface normal by
    Mitsuba's ray offset :math:`h` (about 1e-4 scene units): a parallel
    shift of up to :math:`h`, enough to carry an edge-sampling side ray,
    aimed 1e-4 from an edge behind the surface, over to the other side.
    Stepping along the ray until the plane is ``CLEARANCE`` h behind keeps
    the line (float error at a hit point is ~1e-7 |p|, far below). The step
    is capped at h, as far as ``spawn_ray`` moves (a longer one could skip
    a surface just behind, e.g. at a box corner), and near-tangent rays are
    moved off the plane by at least ``MIN_CLEARANCE`` h, so that they do
    not hit the surface again.
    """
    h = (1.0 + dr.max(dr.abs(si.p))) * mi.math.RayEpsilon
    cos_n = dr.dot(si.n, ray.d)
    step = dr.minimum(CLEARANCE * h * dr.rcp(dr.abs(cos_n)), MAX_STEP * h)
    clearance = dr.maximum(MIN_CLEARANCE * h - step * dr.abs(cos_n), 0.0)
    o = ray.o + ray.d * (si.t + step) + si.n * (dr.sign(cos_n) * clearance)
    return mi.Ray3f(o, ray.d, ray.time, ray.wavelengths)
