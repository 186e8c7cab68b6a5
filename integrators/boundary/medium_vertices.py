r"""
Camera-path vertices in scenes with participating media (secondary edges of ``pbdr_volume``)
============================================================================================

``secondary_edges.py`` samples one silhouette edge at every vertex of a
camera path; ``surface_vertices`` there walks surface-only paths. This
walker produces the vertices of ``pbdr_volume``'s paths instead:

- free flights through media by delta tracking (the integrator's own
  ``delta_tracking``, primal), so the throughput :math:`\beta_k` holds the
  transmittance and scattering weights, and a vertex is a *real* event;
- null-BSDF surfaces (medium boundaries) are crossed, not counted, as in
  ``volpath``, on the ray's own line (``pass_through``: a side ray aimed
  1e-4 from an edge beyond such a surface must stay on its side);
- at a **medium vertex** the reflected radiance is
  :math:`\int_{S^2} f_p(\omega)\, L_i(p, \omega)\, d\omega` (phase function
  :math:`f_p`): every direction counts (no tangent-plane clip), and the side
  rays start in that medium;
- at a **surface vertex** the BSDF and the cosine, as for ``pbdr_edge``; the
  side rays start in the medium on their side of the surface.

Both side paths are traced with ``pbdr_volume``'s primal ``sample`` (given
the medium they start in), so :math:`L_\mp` include attenuation and
in-scattering along and after the side rays.

Velocities follow ``pbdr_volume``'s interior term (``volume_motion``):
points on a moving mesh slide along their ray (``sliding_point``), later
vertices are dragged by the last of them (``event_position``), and a
moving vertex keeps its next vertex fixed, at the first surface that is
not a null boundary (``_real_hit_distance``; the side paths'
transmittance is held, and so is the drag of that next vertex). Dragged
vertices weigh only the edges of moving meshes; static edges near a
moving mesh, which move relative to them, are left out. Static vertices get Li et al.'s :math:`n_h\cdot\dot m /
\lVert m - p\rVert`: shadows that a moving mesh casts on surfaces and into
media, and occlusion seen from them; points on the moving mesh add the
motion of every edge they see (e.g. a light's border seen from its faces).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import drjit as dr
import mitsuba as mi

from pbdr.geometry.rays import pass_through
from pbdr.geometry.moving import attached_interaction, on_moving_mesh
from pbdr.integrators.boundary.secondary_edges import SecondaryEdges, Vertex, camera_sample, trace_sides
from pbdr.geometry.drag import Anchor, anchor_of, anchor_weight, drag


def _is_null_boundary(si: mi.SurfaceInteraction3f, ray: mi.Ray3f) -> mi.Bool:
    """A medium boundary: a null surface, crossed without counting as a vertex."""
    flags = si.bsdf(ray).flags()
    return si.is_valid() & mi.has_flag(flags, mi.BSDFFlags.Null) & ~mi.has_flag(flags, mi.BSDFFlags.Reflection)


@dr.syntax
def _next_event(integrator: mi.Integrator, scene: mi.Scene, sampler: mi.Sampler, ray: mi.Ray3f,
                medium: mi.MediumPtr, β: mi.Spectrum, active: mi.Bool):
    """Flight along ``ray`` to the next real event: a medium collision or a non-null surface.

    Returns (is_medium, mei, si, ray, medium, β, active) with ``ray`` the last
    segment (its direction is the incident one at the event).
    """
    ray = mi.Ray3f(ray)
    medium = mi.MediumPtr(medium)
    β = mi.Spectrum(β)
    searching = mi.Bool(active)
    found_medium = mi.Bool(False)
    mei = dr.zeros(mi.MediumInteraction3f)
    si = dr.zeros(mi.SurfaceInteraction3f)
    while searching:
        si[searching] = scene.ray_intersect(ray, mi.RayFlags.All, False, searching)
        in_medium = searching & (medium != None)   # noqa: E711 (Dr.Jit pointer test)
        m, real, dark, _, _, _, β, _ = integrator.delta_tracking(
            dr.ADMode.Primal, sampler, ray, medium, si.t, mi.Spectrum(0), mi.Spectrum(0), β,
            mi.Spectrum(0), in_medium)
        β[dark] = 0.0       # a dark collision (σ_s = 0) sees nothing: its weight is 0
        mei[real] = m
        found_medium |= real
        searching &= ~real & si.is_valid()
        null = searching & _is_null_boundary(si, ray)
        β[null] *= si.bsdf(ray).eval_null_transmission(si, null)
        medium[null & si.is_medium_transition()] = si.target_medium(ray.d)
        ray[null] = pass_through(ray, si)
        searching &= null
    active = mi.Bool(active) & (found_medium | si.is_valid())
    return found_medium, mei, si, ray, medium, β, active


@dr.syntax
def _real_hit_distance(scene: mi.Scene, ray: mi.Ray3f, active: mi.Bool) -> mi.Float:
    """Distance along ``ray`` to the first surface that is not a null medium boundary
    (the next vertex that a moving vertex keeps fixed; inf if none)."""
    origin = mi.Point3f(ray.o)
    ray = mi.Ray3f(ray)
    si = dr.zeros(mi.SurfaceInteraction3f)
    searching = mi.Bool(active)
    while searching:
        si[searching] = scene.ray_intersect(ray, mi.RayFlags.Minimal, False, searching)
        searching &= _is_null_boundary(si, ray)
        ray[searching] = pass_through(ray, si)   # on the same line, so distances add up
    return dr.select(si.is_valid(), dr.norm(ray.o - origin) + si.t, dr.inf)


@dataclass
class PathEvent:
    """Real event k of ``count`` volumetric camera paths (detached): a medium
    collision (``mei``) or a non-null surface (``si``), found along ``ray``
    (the last segment, past any null boundaries) in ``medium`` (the medium
    of that segment), with the path's throughput ``β`` up to it."""

    k: int
    pos: mi.Point2f
    β: mi.Spectrum
    is_medium: mi.Bool
    mei: mi.MediumInteraction3f
    si: mi.SurfaceInteraction3f
    ray: mi.Ray3f
    medium: mi.MediumPtr
    active: mi.Bool
    moving: mi.Bool         # a surface event on a moving mesh
    material: mi.Float      # then: its weight of the mesh's material motion
    anchor_ray: mi.Ray3f    # the ray that hit the last moving-mesh event before this one
    anchor_on: mi.Bool      # (``volume_motion``: what drags this event)
    anchor_material: mi.Float
    anchor_p: mi.Point3f    # where that event is (detached)


def event_anchor(scene: mi.Scene, event: PathEvent) -> Anchor:
    """The anchor that drags the event (re-attached)."""
    return anchor_of(scene, event.anchor_ray, event.anchor_on, event.anchor_material)


def event_position(scene: mi.Scene, event: PathEvent, radius: float) -> mi.Point3f:
    """The event's position as ``pbdr_volume``'s interior term moves it
    (attached): a point on a moving mesh blends sliding along its ray with
    the mesh's material motion, other events are dragged by their anchor
    (``volume_motion``)."""
    on_surface = event.active & ~event.is_medium
    with dr.resume_grad():
        on_mesh = attached_interaction(scene, event.si, event.ray, event.moving, event.material).p
        p = dr.detach(dr.select(on_surface, event.si.p, event.mei.p))
        # A medium vertex moves freely (no normal to keep to), a surface point tangentially.
        dragged, _ = drag(event_anchor(scene, event), p, dr.select(on_surface, dr.detach(event.si.n), 0.0),
                          radius)
        return dr.select(event.moving, on_mesh, p + dragged)


def volumetric_path(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                    sampler: mi.Sampler, depth: int) -> Iterator[PathEvent]:
    """Events 0 .. depth - 1 of volumetric camera paths (one per lane of
    ``sampler``): delta tracking through media, null boundaries crossed,
    the next direction by phase or BSDF sampling."""
    ctx = mi.BSDFContext()
    with dr.suspend_grad():
        pos, ray, β = camera_sample(sensor, sampler)
        medium = dr.zeros(mi.MediumPtr)             # cameras outside media, as pbdr_volume
        active = mi.Bool(True)
        anchor_ray, anchor_on = dr.zeros(mi.Ray3f, dr.width(ray)), mi.Bool(False)
        anchor_material, anchor_p = mi.Float(0.0), mi.Point3f(0.0)
    radius = integrator.drag_radius_in(scene)
    for k in range(depth):
        with dr.suspend_grad():
            is_medium, mei, si, ray, medium, β, active = _next_event(
                integrator, scene, sampler, ray, medium, β, active)
            is_medium &= active
            dr.eval(si, mei, β, active, medium, ray)
        # Outside suspend_grad: whether a mesh moves is a test of its gradient flag.
        moving = on_moving_mesh(scene, si.shape, active & ~is_medium)
        with dr.suspend_grad():
            material = dr.select(moving, anchor_weight(Anchor(anchor_p, mi.Vector3f(0.0), anchor_on),
                                                       si.p, radius)[0], 0.0)
            dr.eval(material)
        yield PathEvent(k, pos, β, is_medium, mei, si, ray, medium, mi.Bool(active), moving, material,
                        anchor_ray, anchor_on, anchor_material, anchor_p)
        with dr.suspend_grad():
            anchor_ray = dr.select(moving, ray, anchor_ray)
            anchor_on = anchor_on | moving
            anchor_material = dr.select(moving, material, anchor_material)
            anchor_p = dr.select(moving, si.p, anchor_p)
        if k + 1 == depth:
            return
        with dr.suspend_grad():   # the next direction: phase or BSDF sampling
            phase = mei.medium.phase_function()
            phase_ctx = mi.PhaseFunctionContext(sampler)
            bsdf = si.bsdf(ray)
            wo_p, w_p, pdf_p = phase.sample(phase_ctx, mei, sampler.next_1d(), sampler.next_2d(),
                                            active & is_medium)
            bs, w_s = bsdf.sample(ctx, si, sampler.next_1d(), sampler.next_2d(), active & ~is_medium)
            β = β * dr.select(is_medium, mi.Spectrum(w_p), w_s)
            active &= dr.select(is_medium, pdf_p > 0, bs.pdf > 0) & dr.any(mi.unpolarized_spectrum(β) != 0)
            wo = dr.select(is_medium, wo_p, si.to_world(bs.wo))
            ray = si.spawn_ray(wo)
            ray[is_medium] = mei.spawn_ray(wo)
            surface_transition = ~is_medium & si.is_medium_transition()
            medium[surface_transition] = si.target_medium(wo)
            dr.eval(ray, β, active, medium)


def medium_vertices(scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                    sampler: mi.Sampler, count: int, depth: int) -> Iterator[Vertex]:
    """Vertices 0 .. depth - 1 of ``count`` volumetric camera paths (a ``secondary_edges`` walker)."""
    ctx = mi.BSDFContext()
    for event in volumetric_path(scene, sensor, integrator, sampler, depth):
        k, si, mei, ray, is_medium, active = event.k, event.si, event.mei, event.ray, event.is_medium, event.active
        with dr.suspend_grad():
            bsdf = si.bsdf(ray)
            phase = mei.medium.phase_function()
            phase_ctx = mi.PhaseFunctionContext(sampler)
            p = dr.select(is_medium, mei.p, si.p)
            n_c = dr.select(is_medium, -ray.d, si.sh_frame.n * dr.sign(mi.Frame3f.cos_theta(si.wi)))
            clip = ~is_medium & ~mi.has_flag(bsdf.flags(), mi.BSDFFlags.Transmission)
            dr.eval(p, n_c, clip)

        def f(ω: mi.Vector3f, act: mi.Bool, si=si, mei=mei, bsdf=bsdf, phase=phase,
              phase_ctx=phase_ctx, is_medium=is_medium) -> mi.Spectrum:
            f_s = bsdf.eval(ctx, si, si.to_local(ω), act & ~is_medium)
            f_p = phase.eval_pdf(phase_ctx, mei, ω, act & is_medium)[0]
            return dr.select(is_medium, mi.Spectrum(f_p), f_s)

        def origin(lanes: mi.UInt32, d: mi.Vector3f, si=si, p=p, is_medium=is_medium,
                   medium=event.medium) -> tuple[mi.Ray3f, mi.MediumPtr]:
            s = dr.gather(mi.SurfaceInteraction3f, si, lanes)
            in_medium = dr.gather(mi.Bool, is_medium, lanes)
            ray = s.spawn_ray(d)
            ray[in_medium] = mi.Ray3f(dr.gather(mi.Point3f, p, lanes), d)
            start = dr.gather(mi.MediumPtr, medium, lanes)
            start[~in_medium & s.is_medium_transition()] = s.target_medium(d)
            return ray, start

        def spawn(lanes: mi.UInt32, d: mi.Vector3f, origin=origin) -> mi.Ray3f:
            return origin(lanes, d)[0]

        def trace(side_sampler: mi.Sampler, lanes: mi.UInt32, ray: mi.Ray3f, depth_left: int,
                  act: mi.Bool, origin=origin) -> tuple[mi.Spectrum, mi.Float]:
            L, _ = trace_sides(integrator, scene, side_sampler, ray, depth_left, act,
                               medium=origin(lanes, ray.d)[1])
            return L, _real_hit_distance(scene, ray, act)

        def position(event=event) -> mi.Point3f:
            return event_position(scene, event, integrator.drag_radius_in(scene))

        # A dragged vertex weighs the moving edges only, as a static one: with every edge,
        # its velocity term (the side paths' next vertices held) made the estimate heavy-tailed.
        yield Vertex(k, event.pos, event.β, p, position, n_c, clip, f, spawn, trace, mi.Bool(active),
                     event.moving)


class SecondaryEdgesInMedia(SecondaryEdges):
    """The secondary-edge term on volumetric camera paths: vertices in media
    and on surfaces, side paths that start in the vertex's medium."""

    walker = staticmethod(medium_vertices)
