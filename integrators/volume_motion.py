r"""
How ``pbdr_volume``'s path vertices move with a moving mesh (interior term)
==========================================================================

The derivative of a path integral under a reparameterization
:math:`x_k(\pi)` of the vertices is

.. math::

    \partial_\pi \int f\, d\mu = \int \sum_k \Big(\nabla_{x_k} f \cdot V_k
        + f\, \nabla\cdot V_k\Big)\, d\mu + \text{boundary terms},

for any velocities :math:`V_k` that keep surfaces on surfaces (a point on
a moving mesh has the mesh's normal velocity; on a static surface,
tangential). ``pbdr_volume`` chooses:

- a point hit on a moving mesh **slides along its fixed ray** (always
  the first hit of a camera ray); it becomes the *anchor* :math:`a` of the
  vertices after it;
- every later vertex is **dragged** by the anchor:
  :math:`V(y) = w(\lVert y - a\rVert)\, P_y\, \dot a`, with :math:`w = 1`
  up to half the drag radius :math:`\delta` and a smooth step to 0 at
  :math:`\delta` (:math:`P_y`: the projection on a static surface's tangent
  plane; identity in a medium). Its measure changes by
  :math:`\nabla\cdot V = w'(r)\, (P_y \hat r)\cdot(P_y \dot a)`.

Held fixed instead (volume or area measure), a vertex :math:`y` next to a
moving point :math:`x` has the Jacobian :math:`1/r^2` (or
:math:`|\cos\theta_y|/r^2`) whose derivative :math:`\propto 1/r^3` makes
the estimate heavy-tailed (its absolute integral diverges at
:math:`r \to 0`: medium vertices next to a moving surface, a floor next to
a resting object). Dragged, the vertices near the anchor move with it and
nothing singular is left; far from it (beyond :math:`\delta`) they stay.

Each real vertex :math:`y` then adds, times the radiance :math:`L` still
to come there: the change of the segment from the previous vertex
:math:`x`, :math:`f_x(\omega_{xy}) J(x, y) T(x, y)` (less
:math:`f_x(\omega_0)`, counted at :math:`x`; :math:`J` does not see the
sliding of :math:`y`, a change of variables in solid angle), and
:math:`\nabla\cdot V_y`. Its incident direction, light sample and optical
depths follow it (``light_sample_terms``). A point on a moving mesh
blends the two motions: near the anchor it follows the mesh's material
point (as the vertices dragged with it), far from it it slides; the
blend's divergence holds :math:`\nabla w\cdot(V_{material} - V_{slide})`.
The medium's domain moves only where a moving mesh bounds it; where a
flight ends on a surface that moves relative to the drag there (a moving
mesh not dragged along, a static surface within the drag), the
in-scattering at its end is the ``flight_ends`` boundary term
(``boundary/flight_ends.py``).
"""
from __future__ import annotations

from typing import NamedTuple

import drjit as dr
import mitsuba as mi

from pbdr.geometry.measure import area_jacobian, volume_jacobian
from pbdr.geometry.drag import Anchor, anchor_of, anchor_weight, drag
from pbdr.geometry.moving import attached_interaction, on_moving_mesh, sliding_point
from pbdr.geometry.optical_depth import optical_depth_change, optical_depth_gradients, sigma_t_at


def relative(value: mi.Spectrum, active: mi.Bool) -> mi.Spectrum:
    """value / detach(value): 1 with the gradient ∂value / value (0 where value = 0)."""
    v = dr.detach(value)
    return dr.select(active & (v != 0), value * dr.select(v != 0, dr.rcp(v), 0), 0)


class Previous(NamedTuple):
    """The previous real vertex of each path (detached loop state of the replay)."""

    surface: mi.Bool          # a non-null surface point, hit by ``ray``
    medium_vertex: mi.Bool    # a medium vertex at ``p``
    moving: mi.Bool           # on a moving mesh (then the anchor itself)
    material: mi.Float        # then: its weight of the mesh's material motion (``vertex_terms``)
    ray: mi.Ray3f
    p: mi.Point3f
    n: mi.Vector3f            # geometric normal (surface)
    wi: mi.Vector3f           # incident direction, world (medium vertex)
    wo: mi.Vector3f           # the direction sampled there, world
    medium: mi.MediumPtr      # the medium the segment leaving it starts in


class Vertex(NamedTuple):
    """This vertex as the replay differentiates it."""

    si: mi.SurfaceInteraction3f     # surface: attached (sliding or dragged) with its incident direction
    wi: mi.Vector3f                 # medium vertex: incident direction, world (attached)
    motion: mi.Vector3f             # displacement (value 0) of the point (sliding or dragged)
    material: mi.Float              # on a moving mesh: its weight of the material motion (detached)
    moving: mi.Bool                 # a surface point on a moving mesh (the next anchor)
    Lo: mi.Spectrum                 # the segment's and the measure's terms, times L


def vertex_terms(scene: mi.Scene, sampler: mi.Sampler, ray: mi.Ray3f, si: mi.SurfaceInteraction3f,
                 mei: mi.MediumInteraction3f, on_surface: mi.Bool, in_medium: mi.Bool, bsdf: mi.BSDFPtr,
                 medium: mi.MediumPtr, prev: Previous, anchor: Anchor, radius: float,
                 L: mi.Spectrum) -> Vertex:
    """This vertex in the parameterization above (replay, under ``resume_grad``)."""
    ctx = mi.BSDFContext()
    # This vertex: sliding on a moving mesh, else dragged.
    moving = on_surface & on_moving_mesh(scene, si.shape, on_surface)
    is_vertex = in_medium | (on_surface & ~mi.has_flag(bsdf.flags(), mi.BSDFFlags.Null))
    y = dr.detach(dr.select(in_medium, mei.p, si.p))
    n_y = dr.detach(si.n)
    # On a moving mesh, near the anchor the point follows the mesh's material point (as
    # the vertices dragged with it), far from it it slides along its ray; a blend between
    # (both keep it on the surface), whose divergence holds ∇w · (V_material - V_slide).
    w, dw, r_hat = anchor_weight(anchor, y, radius)
    w = dr.select(moving, w, 0.0)
    si_ad = attached_interaction(scene, si, ray, moving, w)
    Δ_mat = attached_interaction(scene, si, ray, moving, mi.Float(1.0)).p - y
    Δ_sl = sliding_point(scene, si, ray, moving) - y
    r_t = r_hat - n_y * dr.dot(n_y, r_hat)
    div_moving = dw * dr.dot(r_t, Δ_mat - Δ_sl)
    # A medium vertex moves freely (no normal to keep to), a surface point tangentially.
    dragged, div_dragged = drag(anchor, y, dr.select(in_medium, 0.0, n_y), radius)
    div = dr.select(is_vertex, dr.select(moving, div_moving, div_dragged), 0.0)
    # What J and ω see: not the sliding along the ray from x (a change of variables in solid angle).
    y_drag = y + dr.select(moving, w * Δ_mat, dragged)
    y_att = y_drag + dr.select(moving, (1.0 - w) * Δ_sl, 0.0)
    # The previous vertex: on a moving mesh (the anchor itself), or dragged.
    x = attached_interaction(scene, scene.ray_intersect(prev.ray, prev.surface & is_vertex), prev.ray,
                             prev.surface & prev.moving & is_vertex, prev.material)
    x_dragged, _ = drag(anchor, prev.p, dr.select(prev.medium_vertex, 0.0, prev.n), radius)
    x_att = dr.select(prev.moving, x.p, prev.p + x_dragged)
    seg = is_vertex & (prev.surface | prev.medium_vertex)
    ω = dr.normalize(y_drag - x_att)     # (sliding moves y along its ray from x: not ω)
    # The value at x towards y, less that towards the sampled direction (counted at x).
    x_si = dr.select(prev.moving, x, dr.detach(x))
    bsdf_x = x_si.bsdf(prev.ray)
    f_ω = bsdf_x.eval(ctx, x_si, x_si.to_local(ω), seg & prev.surface)
    f_0 = bsdf_x.eval(ctx, x_si, x_si.to_local(prev.wo), seg & prev.surface)
    mei_x = dr.zeros(mi.MediumInteraction3f)
    mei_x.p, mei_x.wi, mei_x.medium = prev.p, prev.wi, prev.medium
    mei_x.sh_frame = mi.Frame3f(prev.wi)
    mei_x.time, mei_x.wavelengths = ray.time, ray.wavelengths
    pctx = mi.PhaseFunctionContext(sampler)
    phase_x = prev.medium.phase_function()
    p_ω = phase_x.eval_pdf(pctx, mei_x, ω, seg & prev.medium_vertex)[0]
    p_0 = phase_x.eval_pdf(pctx, mei_x, prev.wo, seg & prev.medium_vertex)[0]
    f_ω = dr.select(prev.surface, f_ω, mi.Spectrum(p_ω))
    f_0 = dr.select(prev.surface, f_0, mi.Spectrum(p_0))
    J = dr.select(in_medium, volume_jacobian(x_att, y_drag, seg), area_jacobian(x_att, y_drag, n_y, seg))
    # Optical depth between the two as both move.
    x_det = dr.detach(x_att)
    walk = mi.Ray3f(x_det, dr.normalize(y - x_det))
    r = dr.norm(y - x_det)
    offset = (1.0 + dr.max(dr.abs(x_det))) * mi.math.RayEpsilon
    walk.o = dr.select(prev.surface, x_det + prev.n * dr.sign(dr.dot(prev.n, walk.d)) * offset, x_det)
    walk.maxt = r * (1.0 - mi.math.ShadowEpsilon)
    gx, gy = optical_depth_gradients(scene, x_det, walk, r, prev.medium, seg)
    τ = optical_depth_change(gx, gy, x_att, y_att)
    Lo = dr.select(seg, L * (relative(f_ω, seg) - relative(f_0, seg) + relative(mi.Spectrum(J), seg) - τ), 0.0)
    # A camera ray's flight (no previous vertex): its end slides along it, σ_t(y) ṫ.
    first = is_vertex & ~prev.surface & ~prev.medium_vertex & moving & (medium != None)   # noqa: E711
    Lo -= L * dr.select(first, sigma_t_at(medium, y, first) * dr.dot(ray.d, y_att - y), 0.0)
    Lo += L * div
    # This vertex follows: its position and incident direction.
    wi = dr.normalize(x_att - y_drag)
    si_ad.p = dr.select(moving, si_ad.p, dr.replace_grad(si_ad.p, y_att))
    si_ad.wi = dr.select(seg & on_surface, dr.replace_grad(si_ad.wi, dr.detach(si_ad).to_local(wi)), si_ad.wi)
    wi_m = dr.select(seg & in_medium, dr.replace_grad(mei.wi, wi), mei.wi)
    return Vertex(si_ad, wi_m, y_att - y, w, moving, Lo)


def light_sample_terms(scene: mi.Scene, ref: mi.Interaction3f, ds: mi.DirectionSample3f,
                       motion: mi.Vector3f, medium: mi.MediumPtr, Lr: mi.Spectrum,
                       active: mi.Bool) -> mi.Spectrum:
    """-Lr τ̇ of the light sample's segment as its origin moves by ``motion`` (value 0, attached)."""
    infinite = mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Infinite)
    ray = ref.spawn_ray_to(ds.p)
    ray[infinite] = ref.spawn_ray(ds.d)
    gx, gy = optical_depth_gradients(scene, dr.detach(ref.p), ray, dr.select(infinite, dr.inf, ds.dist),
                                     medium, active)
    p = dr.detach(ref.p) + motion
    return dr.select(active, -dr.detach(Lr) * optical_depth_change(gx, gy, p, None), 0.0)


def medium_point(mei: mi.MediumInteraction3f, motion: mi.Vector3f) -> mi.Interaction3f:
    """A medium vertex as an interaction at its attached position."""
    it = dr.zeros(mi.Interaction3f)
    it.p = dr.detach(mei.p) + motion
    it.t, it.time, it.wavelengths = mei.t, mei.time, mei.wavelengths
    return it
