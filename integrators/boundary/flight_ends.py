r"""
Free flights that end on a moving surface inside a medium (``flight_ends``)
==========================================================================

Along a ray from a fixed vertex through a medium to a surface point
:math:`y` at distance :math:`d`, the radiance is

.. math::

    L = \int_0^d T(t)\, \sigma_s(x_t)\, L_s(x_t, -\omega)\, dt + T(d)\, L_{surf}(y),
    \qquad L_s(x, \omega_o) = \int_{S^2} f_p(\omega_o, \omega)\, L_i(x, \omega)\, d\omega.

When :math:`y` lies on a moving mesh, :math:`d` changes with the
parameters (the point slides along the fixed ray, as in the interior
term) and

.. math::

    \partial_\pi L = T(d)\,\big[\sigma_s(y^-)\, L_s(y^-) - \sigma_t(y)\, L_{surf}(y)\big]\,\partial_\pi d
        + T(d)\, \partial_\pi L_{surf}(y) + \ldots

The second part of the bracket and :math:`\partial_\pi L_{surf}` are in
``pbdr_volume``'s path replay (the segment's optical depth,
``volume_motion.py``). This term is the first: the flight's integration
domain grows or shrinks at its end, where the medium scatters light from
all around (the surface's own radiance included) towards the path. It is
the boundary of the medium's volume domain, which excludes the moving
object's interior, so it is a boundary term (Leibniz rule) and not part of
the interior integrand. What counts is the surface's motion relative to
the medium's vertices there: the replay drags vertices near a moving
point (``volume_motion``), so a flight's end moves relative to them on a
moving mesh that does not drag them along, and on a static surface that
lies within the drag (:math:`\dot d = n\cdot(V_{surf} - V_{drag})/
n\cdot\omega`).

Estimator: ``spp_flight_ends`` volumetric camera paths per pixel
(``medium_vertices.volumetric_path``: delta tracking, the throughput
:math:`\beta` holds :math:`T(d)/P(\text{reach } d)`); at every event on a
moving mesh, or within the drag, reached through a medium, a direction :math:`\omega` sampled
from the phase function at :math:`y^-` (weight :math:`f_p/p = w_p`) and
:math:`L_i` traced by the integrator's primal ``sample`` from :math:`y^-`
(the point on the arriving side, :math:`\mathrm{RayEpsilon}` off the
surface) with the path's remaining depth, so that

.. math::

    A = \frac{WH}{N}\,\beta\,\sigma_s(y)\, w_p\, L_i, \qquad q = t(y),

with :math:`q` the distance along the fixed ray to the end's plane, moving
relative to the drag (attached), and :math:`WH/N` the film area per
camera path. The sample splats into the camera sample's pixel.

Exact for homogeneous and heterogeneous media (:math:`\sigma_s` at the
surface point); a path's later events on moving meshes are handled the
same way at their own depth. Media whose containers move are not handled
(their boundary is a null surface).
"""
from __future__ import annotations

from typing import Iterator

import drjit as dr
import mitsuba as mi

from pbdr.scene import has_media
from pbdr.geometry.moving import hit_distance, moving_meshes
from pbdr.geometry.drag import Anchor, anchor_weight, drag
from pbdr.integrators.boundary.medium_vertices import event_anchor, volumetric_path
from pbdr.integrators.boundary.secondary_edges import trace_sides
from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, walk_depth


def medium_in_front(medium: mi.MediumPtr, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                    active: mi.Bool) -> mi.MediumInteraction3f:
    """A medium interaction at the surface point ``si``, on the side ``ray`` arrives from."""
    mei = dr.zeros(mi.MediumInteraction3f)
    mei.p = si.p
    mei.t = si.t
    mei.time = si.time
    mei.wavelengths = si.wavelengths
    mei.medium = medium
    mei.wi = -ray.d
    mei.sh_frame = mi.Frame3f(mei.wi)
    σ_s, _, σ_t = medium.get_scattering_coefficients(mei, active)
    mei.sigma_s, mei.sigma_t = σ_s, σ_t
    return mei


def in_front(si: mi.SurfaceInteraction3f, ray: mi.Ray3f) -> mi.Point3f:
    """``si.p`` moved off the surface by Mitsuba's ray offset, to the side ``ray`` arrives from."""
    n = mi.Vector3f(si.n) * -dr.sign(dr.dot(si.n, ray.d))
    return si.p + n * ((1.0 + dr.max(dr.abs(si.p))) * mi.math.RayEpsilon)


def flight_end_samples(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                       seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
    """The term's samples, one batch per path depth (the module's docstring)."""
    depth = walk_depth(integrator)
    with dr.suspend_grad():
        sampler = sensor.sampler().clone()
        sampler.seed(mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(0xF117))[0], count)
    size = sensor.film().crop_size()
    area = float(size[0] * size[1]) / count   # pixel-area weight of one camera sample
    radius = integrator.drag_radius_in(scene)
    # An event at depth k scatters only if k + 1 < max_depth (pbdr_volume's count of real events).
    for event in volumetric_path(scene, sensor, integrator, sampler, depth - 1):
        si, ray, medium = event.si, event.ray, event.medium
        with dr.suspend_grad():
            on_surface = event.active & ~event.is_medium
            dragged = anchor_weight(Anchor(event.anchor_p, mi.Vector3f(0.0), event.anchor_on), si.p, radius)[0] > 0
            ends = on_surface & (event.moving | dragged) & (medium != None)   # noqa: E711
            mei = medium_in_front(medium, si, ray, ends)
            ends &= dr.any(mi.unpolarized_spectrum(mei.sigma_s) != 0)
            phase_ctx = mi.PhaseFunctionContext(sampler)
            wo, w_p, pdf = medium.phase_function().sample(phase_ctx, mei, sampler.next_1d(ends),
                                                          sampler.next_2d(ends), ends)
            ends &= pdf > 0
            L_i, _ = trace_sides(integrator, scene, sampler, mi.Ray3f(in_front(si, ray), wo),
                                 depth - 1 - event.k, ends, medium=medium)
            A = event.β * mei.sigma_s * w_p * L_i * area
            dr.eval(A, ends)
        with dr.resume_grad():
            # Where the flight ends along its fixed ray, as the end's surface moves relative to
            # the medium's vertices there (which the anchor drags freely: no normal).
            drag_end, _ = drag(event_anchor(scene, event), dr.detach(si.p), mi.Vector3f(0.0), radius)
            cos = dr.dot(si.n, ray.d)
            q = hit_distance(scene, si, ray.o, ray.d, ends) - \
                dr.select(cos != 0, dr.dot(si.n, drag_end) / dr.select(cos != 0, cos, 1.0), 0.0)
        yield BoundarySamples(event.pos, [(A, q)], ends)


class FlightEnds(BoundaryTerm):
    """In-scattering gained or lost where free flights end on moving
    surfaces inside media (the module's docstring): ``flight_ends``,
    ``spp_flight_ends`` (default: a quarter of the interior spp)."""

    name = "flight_ends"
    spp_divisor = 4

    def applies(self, scene: mi.Scene) -> bool:
        return bool(moving_meshes(scene)) and has_media(scene)

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
        return flight_end_samples(scene, sensor, integrator, seed, count)
