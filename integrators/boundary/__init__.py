"""Boundary terms of the derivative (each returns a derivative image in
forward mode and accumulates parameter gradients in reverse mode):
``primary_edges`` (silhouettes seen from the camera), ``secondary_edges``
(silhouettes seen from shading points)."""
from __future__ import annotations

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
