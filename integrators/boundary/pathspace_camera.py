"""
The camera side of a path-space boundary segment: the particle tracer from x_a
===============================================================================

``pathspace.py`` carries the camera's importance to the shading point x_a
behind an edge as Mitsuba's ``ptracer`` carries it to light-path vertices:
each vertex of a BSDF walk from x_a is connected to the sensor
(:class:`SensorConnection`), and each step of the walk (:func:`walk_step`)
weighs the radiance-mode BSDF in the camera path's order, so that the
estimate is the camera paths' own integral.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi


class SensorConnection:
    """A camera-side vertex connected to the sensor: its film position and weight."""

    def __init__(self, scene: mi.Scene, sensor: mi.Sensor, si: mi.SurfaceInteraction3f, ω_light: mi.Vector3f,
                 u: mi.Point2f, active: mi.Bool) -> None:
        """``si`` receives light from direction ``ω_light`` (towards the light side);
        the weight is W(y)·f_s(y; ω_cam, ω_light)/|cos_g ω_light| without the
        walk's throughput."""
        ds, w_sensor = sensor.sample_direction(si, u, active)
        active = active & (ds.pdf > 0) & dr.any(mi.unpolarized_spectrum(w_sensor) != 0)
        active &= ~scene.ray_test(si.spawn_ray_to(ds.p), active)
        # Mitsuba's sensor sees the crop window as its image: ds.uv is in its pixels, and the
        # weight is the crop's solid angle per unit area at distance d, so the area density at
        # si of the first hits of camera rays through uniform points of the film is the weight
        # times the cosine at si.
        self.pos = ds.uv
        self.area_pdf = dr.select(active, mi.unpolarized_spectrum(w_sensor)[0] * dr.abs(dr.dot(si.n, ds.d)), 0.0)
        si_cam = mi.SurfaceInteraction3f(si)
        si_cam.wi = si.to_local(ds.d)           # the camera path arrives from the sensor
        bsdf = si.bsdf()
        f = bsdf.eval(mi.BSDFContext(), si_cam, si.to_local(ω_light), active)
        cos_light = dr.abs(dr.dot(si.n, ω_light))
        size = sensor.film().crop_size()
        pixels = float(int(size[0]) * int(size[1]))     # the crop's: the film is sampled uniformly there
        weight = w_sensor * f * (pixels * dr.abs(dr.dot(si.n, ds.d)) / dr.select(cos_light > 0, cos_light, 1.0))
        self.active = active & (cos_light > 0)
        self.weight = dr.select(self.active, weight, 0.0)
        self.origin = ds.p

    def take(self, index: mi.UInt32) -> "SensorConnection":
        """The connections of the lanes ``index``."""
        out = object.__new__(SensorConnection)
        for name in ("pos", "area_pdf", "active", "weight", "origin"):
            value = getattr(self, name)
            setattr(out, name, dr.gather(type(value), value, index))
        return out


def walk_step(scene: mi.Scene, si: mi.SurfaceInteraction3f, ω_light: mi.Vector3f, u1: mi.Float,
               u2: mi.Point2f, active: mi.Bool) -> tuple[mi.SurfaceInteraction3f, mi.Spectrum, mi.Ray3f, mi.Bool]:
    """One step of the camera-side walk from ``si`` (light arriving from
    ``ω_light``): the next vertex, the step's weight
    f_s(ω_o, ω_light)|cos_g ω_o| / (|cos_g ω_light| p(ω_o)) and the ray."""
    bsdf = si.bsdf()
    si_l = mi.SurfaceInteraction3f(si)
    si_l.wi = si.to_local(ω_light)
    bs, _ = bsdf.sample(mi.BSDFContext(mi.TransportMode.Importance), si_l, u1, u2, active)
    ω_o = si.to_world(bs.wo)
    active = active & (bs.pdf > 0)
    si_c = mi.SurfaceInteraction3f(si)
    si_c.wi = bs.wo                                # in the camera path's order: from the camera side
    f = bsdf.eval(mi.BSDFContext(), si_c, si.to_local(ω_light), active)
    cos_light = dr.abs(dr.dot(si.n, ω_light))
    w = f * (dr.abs(dr.dot(si.n, ω_o)) / dr.select(active & (cos_light > 0), cos_light * bs.pdf, 1.0))
    active &= (cos_light > 0) & dr.any(mi.unpolarized_spectrum(w) != 0)
    ray = si.spawn_ray(ω_o)
    nxt = scene.ray_intersect(ray, active)
    active &= nxt.is_valid()
    return nxt, dr.select(active, w, 0.0), ray, active
