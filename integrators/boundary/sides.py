"""The two sides of a boundary sample: side paths at a path vertex, and
side rays pinned to a known face for sides that are the limit of the
radiance on that face."""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from pbdr.geometry.camera import Camera
from pbdr.integrators.boundary.term import depth_limit


def trace_side_pairs(sensor: mi.Sensor, integrator: mi.Integrator, vertex, seed: mi.UInt32, stream: int,
                     side_ray: mi.Ray3f, active: mi.Bool) -> tuple[mi.Spectrum, mi.Spectrum, mi.Float, mi.Float]:
    """The two sides of each sample at a path vertex (a ``secondary_edges.Vertex``),
    traced with the depth left after it: ``side_ray`` holds sample j's sides in
    lanes 2j (minus) and 2j + 1 (plus); ``active`` is per sample; ``stream``
    numbers the term's own random stream. Returns (L_minus, L_plus, d_minus,
    d_plus), d the distance to each side's first hit (as ``vertex.trace``).

    The two sides of a sample draw the same random numbers (common random
    numbers): only their difference counts, and both sides mostly see the
    same lights and occluders, so much of their noise cancels; each side's
    expectation is unchanged."""
    count = dr.width(side_ray.d) // 2
    j = dr.arange(mi.UInt32, count)
    side_seed = mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(stream + vertex.k))[1]
    limit = depth_limit(integrator)
    depth_left = limit - 1 - vertex.k if limit > 0 else -1
    sides = []
    for parity in (0, 1):
        side_sampler = sensor.sampler().clone()
        side_sampler.seed(side_seed, count)
        L, d = vertex.trace(side_sampler, j, dr.gather(mi.Ray3f, side_ray, 2 * j + parity), depth_left, active)
        dr.eval(L, d)   # together: evaluated one by one, each would retrace the side paths
        sides.append((L, d))
    (L_minus, d_minus), (L_plus, d_plus) = sides
    return L_minus, L_plus, d_minus, d_plus


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


def judge_rays(scene: mi.Scene, cam: Camera, judge: mi.Point3f,
               active: mi.Bool) -> tuple[mi.Ray3f, mi.PreliminaryIntersection3f]:
    """Camera rays towards boundary points ``judge`` and their first hits:
    ``pinned_hits``' visibility test, traced once for both sides of a sample."""
    towards = cam.ray_towards(judge)
    return towards, scene.ray_intersect_preliminary(towards, coherent=True, reorder=False, active=active)


def pinned_hits(scene: mi.Scene, cam: Camera, point: FacePoint, aim: mi.Point3f, pin: mi.Bool,
                ray: mi.Ray3f, judge: mi.Point3f | None = None,
                judged: tuple[mi.Ray3f, mi.PreliminaryIntersection3f] | None = None
                ) -> tuple[mi.Ray3f, mi.PreliminaryIntersection3f]:
    """Camera rays and their first intersections for sides that are limits of
    the radiance on a known face at a known point (where ``pin`` is set;
    other lanes keep ``ray`` and trace it).

    Traced, a ray aimed at a point on (or next to) an edge lands on whichever
    side float rounding puts it: on a face seen at a grazing angle, a ray
    that passes 10⁻⁷ of the distance from its target meets the plane 10⁻⁴
    away along the face, so rays aimed just inside a face seen nearly edge-on
    miss it. So the hit is ``point`` itself (its triangle, barycentrics and
    distance), unless a ray towards the boundary point ``judge`` (an edge
    point, or a terminator arc's point; default: ``point``) meets something
    clearly in front (nearer than ``(1 - PIN_DEPTH_TOLERANCE)`` of the
    distance): then it is
    hidden and the side sees that occluder, at the very hit the other side
    sees. Visibility is decided at the boundary point, once for both sides:
    a side point a little off it, on a face seen nearly edge-on, can lie
    millimetres deeper, behind an occluder the boundary point clears. An
    occluder that is a null interface (a medium's boundary) is crossed by
    the path, which must then find the face itself: that ray aims at
    ``aim``, inside the face. ``judged``: ``judge_rays(scene, cam, judge,
    ...)`` already traced (for every lane where ``pin`` may be set).
    """
    judge = point.p if judge is None else judge
    towards = cam.ray_towards(point.p)
    towards_judge, pi_x = judge_rays(scene, cam, judge, pin) if judged is None else judged
    t = dr.norm(point.p - towards.o)
    t_judge = dr.norm(judge - towards_judge.o)
    hidden = pin & pi_x.is_valid() & (pi_x.t < t_judge * (1 - PIN_DEPTH_TOLERANCE))
    use = pin & ~hidden
    si = pi_x.compute_surface_interaction(towards_judge, mi.RayFlags.Minimal, hidden)
    crossed = hidden & mi.has_flag(si.bsdf().flags(), mi.BSDFFlags.Null)
    ray = mi.Ray3f(ray)
    ray[use] = towards
    ray[hidden & ~crossed] = towards_judge
    ray[crossed] = cam.ray_towards(aim)
    pi = scene.ray_intersect_preliminary(ray, coherent=True, reorder=False, active=~pin | crossed)
    pi = dr.select(hidden & ~crossed, pi_x, pi)
    pinned = dr.zeros(mi.PreliminaryIntersection3f, dr.width(use))
    pinned.t, pinned.prim_uv, pinned.prim_index, pinned.shape_index = t, point.uv, point.prim, point.shape_index
    pinned.shape = dr.gather(mi.ShapePtr, scene.shapes_dr(), point.shape_index, use)
    pinned.valid = mi.Bool(True)
    return ray, dr.select(use, pinned, pi)
