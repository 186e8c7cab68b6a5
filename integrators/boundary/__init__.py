"""Boundary terms of the derivative (each returns a derivative image in
forward mode and accumulates parameter gradients in reverse mode):
``primary_edges`` (silhouettes seen from the camera), ``secondary_edges``
(silhouettes seen from shading points)."""
from __future__ import annotations

import drjit as dr
import mitsuba as mi


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


def sliding_point(scene: mi.Scene, pi: mi.PreliminaryIntersection3f, ray: mi.Ray3f,
                  active: mi.Bool) -> mi.Point3f:
    """The hit point of a fixed ray, attached to the vertex positions of moving meshes.

    The point slides along ``ray`` as the hit triangle moves (the interior
    term's parameterization): p = o + t d with t from the triangle's plane.
    Written out per moving mesh rather than through
    ``compute_surface_interaction``, whose AD goes through a virtual call
    that forward mode cannot traverse once its inputs' edges were cleared.
    """
    p = mi.Point3f(dr.detach(ray(pi.t)))
    for shape in scene.shapes():
        if not shape.is_mesh() or not dr.grad_enabled(shape.vertex_positions_buffer()):
            continue
        on = active & pi.is_valid() & (pi.shape == mi.ShapePtr(shape))
        face = dr.gather(mi.Vector3u, shape.faces_buffer(), pi.prim_index, on)
        v0, v1, v2 = (dr.gather(mi.Point3f, shape.vertex_positions_buffer(), face[i], on) for i in range(3))
        n = dr.cross(v1 - v0, v2 - v0)
        t = dr.dot(n, v0 - ray.o) / dr.dot(n, ray.d)
        p = dr.select(on, ray.o + t * ray.d, p)
    return p
