r"""
pbdr_volume: volumetric path replay with differential ratio tracking
=====================================================================

Radiance in a scene with participating media, written in the null-scattering
form (Galtier et al. 2013; Miller, Georgiev, Jarosz 2019) with a constant
*majorant* :math:`\bar\sigma` along each free flight and
:math:`\sigma_n = \bar\sigma - \sigma_t`:

.. math::

    L(x, \omega) = \int_0^d e^{-\bar\sigma t}\,
        \big[\sigma_s L_s + \sigma_n L\big](x_t, \omega)\, dt
        + e^{-\bar\sigma d} L_{surf}(x_d, \omega).

Its value does not depend on :math:`\bar\sigma`, so :math:`\bar\sigma` is
held *fixed* (detached) when differentiating, and

.. math::

    \partial_\pi L(x, \omega) = \int_0^d e^{-\bar\sigma t}\,
        \big[\partial_\pi\sigma_s\, L_s - \partial_\pi\sigma_t\, L\big](x_t)\, dt + \ldots

Heterogeneous media: tentative collisions at rate
:math:`\bar\sigma = \kappa\,\sigma_{maj}` (``majorant_factor`` :math:`\kappa > 1`
times the medium's majorant), a *real* collision with probability
:math:`P_r = \bar{\sigma_t}/\bar\sigma` (channel mean), a *null* one
otherwise. Every sampling decision is detached, so the derivative of a path's
weight is the derivative of its local factors (Nimier-David, Müller, Keller,
Jakob 2022, "Unbiased Inverse Volume Rendering with Differential Trackers"):

- real collision: :math:`w_r = \sigma_s / (\bar\sigma P_r)`,
  :math:`\partial w_r = \partial\sigma_s / (\bar\sigma P_r)`,
- null collision: :math:`w_n = \sigma_n / (\bar\sigma (1 - P_r))`,
  :math:`\partial w_n = -\partial\sigma_t / (\bar\sigma (1 - P_r))`,
- shadow rays, ratio tracking: :math:`\hat T = \prod_i \sigma_n(x_i)/\bar\sigma`,
  :math:`\partial\hat T = \hat T \sum_i -\partial\sigma_t(x_i)/\sigma_n(x_i)`
  (differential ratio tracking).

With path replay (Vicini et al. 2021) the radiance still to come after a
vertex, :math:`L`, multiplies :math:`\partial w / w`; it is the same at
every null collision of a free flight, so the null collisions run in an inner
loop (``delta_tracking``) and the path loop turns once per real event. This
is unbiased where plain differentiation of delta tracking with
:math:`\kappa = 1` (``prbvolpath``) is not: Mitsuba's majorant is the grid
maximum, so wherever :math:`\sigma_t = \sigma_{maj}` (a saturated or
uniform grid) :math:`P_r = 1`, no null collision is ever sampled and the
:math:`-\partial\sigma_t L` (attenuation) term is lost. With :math:`\kappa > 1`,
:math:`1 - P_r \ge 1 - 1/\kappa` everywhere and
:math:`|\partial w_n| \le |\partial\sigma_t| / ((1 - 1/\kappa)\bar\sigma)` is
bounded. The cost is :math:`\kappa` times more tentative collisions; a
:math:`\kappa` close to 1 makes null collisions rare where the density is
near its maximum, and their weights large (the default 1.5 balances the two).

Homogeneous media sample the exact free flight :math:`p(t) = \sigma_t
e^{-\sigma_t t}` (detached) and weigh a collision by
:math:`T(t)\,\sigma_s / p(t)`, an escape by :math:`T(d) / P(t > d)`, with
:math:`T` attached: the derivative :math:`-t\,\partial\sigma_t` comes from
:math:`T`, with no null collisions; shadow rays take :math:`T(d)` in one step.

Empty voxels and zero albedo: where :math:`\sigma_s = 0` at :math:`\pi` a real
collision has :math:`w_r = 0` but :math:`\partial w_r = \partial\sigma_s / (\bar\sigma P_r)`
need not be 0 (density added to empty space scatters). While a medium's
:math:`\sigma_t` or albedo carries gradients, (i) :math:`P_r \ge` ``P_REAL_MIN``
(0.05), so real collisions are sampled where :math:`\sigma_t = 0`, and (ii) a path
continues through such a *dark* collision with its throughput unchanged: what
it collects afterwards, :math:`L_{dark}`, is not part of the primal image
(the weight is 0) and the replay adds :math:`\partial w_r \, L_{dark}` there;
a second dark collision ends the path (no first-order term is left). The
estimator is then unbiased for any density and albedo, 0 included, with no
haze.

Next-event estimation from media and smooth surfaces is MIS-weighted with
phase/BSDF sampling; emitted radiance, BSDF values and emitter values are
differentiated as in ``pbdr_interior``. Spectrally varying extinction is
allowed (null weights may then be negative); free flights use channel 0 of
the majorant.

Boundary term of moving meshes (primary edges)
----------------------------------------------
The path replay above is the interior term: camera rays, sampled distances
and visibility are fixed, so it holds no derivative of *where* a mesh is.
When mesh vertex positions carry gradients (``*.vertex_positions``, a
mesh's ``to_world`` perturbation), the silhouettes seen from the camera add
the primary-edge term of ``pbdr_edge`` (Li, Aittala, Durand, Lehtinen 2018,
eq. 5),

.. math::

    \partial_\pi I_p^{\text{boundary}} = \int_{\text{edges}}
        \frac{k_p(x)}{\int k}\, \big(L(x - \epsilon n) - L(x + \epsilon n)\big)\,
        (n \cdot \partial_\pi x)\, d\ell(x),

computed by ``integrators/boundary/primary_edges.py`` itself (no copy):
that module traces both sides of each edge sample with *this* integrator's
primal ``sample``, so :math:`L` on either side is the volumetric radiance
(attenuation along the camera ray, in-scattering, surfaces behind the
medium). Silhouettes seen through a medium therefore get the right jump.
Camera rays start outside media, as for the interior term. The medium
containers' own edges are sampled too but do not move (no velocity, no
contribution): media containers are assumed static (a moving container
would also need the boundary of its medium's interior, which is not
implemented).

Secondary edges (``secondary``, on by default) add silhouettes seen from
path vertices (shadows of a moving mesh cast on surfaces and into the
medium, occlusion seen from medium vertices) with ``pbdr_edge``'s
secondary-edge sampler on this integrator's own camera paths
(``integrators/boundary/medium_vertices.py``: delta tracking, medium and
surface vertices, side paths traced with this integrator). Null surfaces
are crossed on the ray's own line (``pbdr.geometry.rays.pass_through``):
``spawn_ray``'s normal offset shifts a ray by ~1e-4, as much as a side
ray's offset from its edge, and would put both sides on one side of edges
seen through a medium boundary.

Moving meshes (interior term, ``volume_motion.py``): a point hit on a
moving mesh slides along its fixed ray (``attached_interaction``:
position, normals and shading frame attached to the vertex buffer), so
its emission, BSDF, cosine and light samples (``attached_emitter_sample``)
follow. The vertices after it are **dragged** by it, with a weight that
falls smoothly from 1 to 0 at ``drag_radius``: held fixed next to a
moving point, a vertex's Jacobian :math:`1/r^2` (or :math:`|\cos\theta_y|
/ r^2`) has a derivative :math:`\propto 1/r^3` that made the estimate
heavy-tailed (medium vertices next to a moving surface, a floor next to a
resting object). Each vertex adds the change of the segment from the
previous one (the BSDF or phase value towards it, the Jacobian, the
optical depth of the segment with the pivoting crossings of medium
boundaries, ``pbdr.geometry.optical_depth``) and the divergence of the
drag; its light sample follows it. Every factor of a vertex goes into one
propagation: they share the moving point's AD graph, which a propagation
clears as it goes. Where a free flight ends on a moving mesh (or on a
surface the drag moves relative to the medium), the in-scattering it
gains or loses is the boundary term ``flight_ends``
(``boundary/flight_ends.py``).

When no mesh has gradient-enabled vertex positions (density, albedo,
material or light-colour derivatives) the boundary terms and the moving
surface terms are skipped, so those derivatives cost the null-scattering
path replay alone.

The class is ``with_boundary_terms(VolumeInterior)``
(``integrators/composite.py``) with the terms ``PrimaryEdges``,
``SecondaryEdgesInMedia`` and ``FlightEnds`` (``boundary/term.py``'s
``BoundaryTerm``).

Plugin parameters
-----------------
- ``max_depth`` (int, default 6): longest path in real scattering events, as ``volpath``.
- ``rr_depth`` (int, default 5): depth at which Russian roulette starts.
- ``majorant_factor`` (float, default 1.5): :math:`\kappa > 1` (heterogeneous media).
- ``interior`` (bool, default true): the interior term (the path replay
  above) on or off, a diagnostic switch like ``primary`` and ``secondary``
  (to measure one term alone); ``spp_interior`` (int, default -1): its
  samples per pixel (-1: the ``spp`` of the call, or the sensor's sampler).
- ``primary`` (bool, default true): add the primary-edge boundary term
  (when some mesh moves).
- ``spp_primary`` (int, default -1): primary-edge samples per pixel of the
  image (``spp_primary · W · H`` edge points, each traced on both sides);
  -1 uses a quarter of the interior spp, as ``pbdr_edge``.
- ``secondary`` (bool, default true): add the secondary-edge term (above)
  when some mesh moves; ``spp_secondary`` (default -1: an eighth of the interior spp),
  ``edge_sampling``, ``edge_candidates``, ``terminator_candidates`` and
  ``terminator_fraction`` as ``pbdr_edge``.
- ``drag_radius`` (float, default 0.05): how far, as a fraction of the
  scene's bounding-box diagonal, a point on a moving mesh drags the path
  vertices after it (full weight up to half of it).
- ``flight_ends`` (bool, default true): add the in-scattering where free
  flights end on a moving mesh inside a medium; ``spp_flight_ends``
  (default -1: a quarter of the interior spp) camera paths per pixel.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import drjit as dr
import mitsuba as mi

from mitsuba.ad.integrators.common import mis_weight

from pbdr.geometry.measure import attached_emitter_sample
from pbdr.geometry.rays import pass_through
from pbdr.geometry.moving import moving_meshes
from pbdr.integrators.boundary.flight_ends import FlightEnds
from pbdr.integrators.boundary.medium_vertices import SecondaryEdgesInMedia
from pbdr.integrators.boundary.primary_edges import PrimaryEdges
from pbdr.integrators.base import PbdrIntegrator
from pbdr.integrators.composite import with_boundary_terms
from pbdr.integrators.volume_motion import (Previous, anchor_of, light_sample_terms, medium_point,
                                            relative, vertex_terms)


def free_flight_sample(u: mi.Float, factor: mi.Float | float) -> mi.Float:
    """Map u so that a medium sampling at rate σ_maj samples at rate factor·σ_maj."""
    return 1.0 - dr.exp(dr.log(1.0 - u) / factor)


def propagate(mode: dr.ADMode, δL: mi.Spectrum, Lo: mi.Spectrum) -> mi.Spectrum:
    """Send the derivative of Lo: backward (adjoint δL) or forward (returns δL + dLo)."""
    if not dr.grad_enabled(Lo):
        return δL
    if mode == dr.ADMode.Backward:
        dr.backward_from(δL * Lo, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
        return δL
    return δL + dr.forward_to(Lo, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)


# Real-collision probability floor while a medium's σ_t or albedo is differentiated: where σ_t = 0,
# P_r = σ_t/σ̄ would never sample the in-scattering that ∂σ_s adds there.
P_REAL_MIN = 0.05


def safe_rcp(x: mi.Float) -> mi.Float:
    """1/x, and 0 where x = 0 (no inf in a branch that a select drops: its gradient would be NaN)."""
    nonzero = x != 0
    return dr.select(nonzero, dr.rcp(dr.select(nonzero, x, 1.0)), 0.0)


class VolumeInterior(PbdrIntegrator):
    """The interior term of ``pbdr_volume`` (null-scattering path replay, the
    module's docstring); ``VolumeIntegrator`` adds the boundary terms."""

    renders_media = True

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        self.majorant_factor = float(props.get("majorant_factor", 1.5))
        if not self.majorant_factor > 1.0:
            raise ValueError(f"pbdr_volume: majorant_factor must be > 1, got {self.majorant_factor}")
        self.moving_meshes = False   # set per derivative render: replay moving surface points
        self.drag_fraction = float(props.get("drag_radius", 0.05))
        if not self.drag_fraction > 0:
            raise ValueError(f"pbdr_volume: drag_radius must be > 0, got {self.drag_fraction}")
        self.dark_paths = False      # set per derivative render of a medium's σ_t or albedo

    def drag_radius_in(self, scene: mi.Scene) -> float:
        """How far a moving point drags the vertices after it (``volume_motion``):
        ``drag_radius`` times the scene's bounding-box diagonal."""
        box = scene.bbox()
        return self.drag_fraction * float(dr.norm(mi.ScalarVector3f(box.max - box.min)))

    def settings_string(self) -> str:
        return f"{super().settings_string()}, majorant_factor={self.majorant_factor}"

    @contextmanager
    def derivative_render(self, scene: mi.Scene) -> Iterator[None]:
        """Within: the path replay differentiates points on moving meshes
        (``moving_surface_terms``), and paths continue through dark
        collisions when a medium's σ_t or albedo carries gradients. Read
        here, before Mitsuba's render suspends gradients around ``sample``,
        where every flag reads off."""
        self.moving_meshes = bool(moving_meshes(scene))
        self.dark_paths = any(('.sigma_t.' in key or '.albedo.' in key) and dr.is_diff_v(value)
                              and dr.grad_enabled(value) for key, value in mi.traverse(scene).items())
        try:
            yield
        finally:
            self.moving_meshes = self.dark_paths = False

    def render_forward(self, scene: mi.Scene, params: Any, sensor: int | mi.Sensor = 0,
                       seed: mi.UInt32 = 0, spp: int = 0) -> mi.TensorXf:
        with self.derivative_render(scene):
            return super().render_forward(scene, params, sensor, seed, spp)

    def render_backward(self, scene: mi.Scene, params: Any, grad_in: mi.TensorXf,
                        sensor: int | mi.Sensor = 0, seed: mi.UInt32 = 0, spp: int = 0) -> None:
        with self.derivative_render(scene):
            super().render_backward(scene, params, grad_in, sensor, seed, spp)

    def tentative_collision(self, medium: mi.MediumPtr, ray: mi.Ray3f, u: mi.Float, active: mi.Bool,
                            attached: bool) -> tuple[mi.MediumInteraction3f, mi.Float, mi.Bool]:
        """A tentative collision, its rate σ̄ (detached) and whether the medium is homogeneous.

        Homogeneous media sample the exact free flight (rate σ_t, channel 0);
        the others sample at σ̄ = κ·σ_maj. With ``attached`` the collision's
        coefficients (and a homogeneous medium's σ_t) carry gradients; its
        position never does.
        """
        homogeneous = active & medium.is_homogeneous()
        factor = dr.select(homogeneous, 1.0, self.majorant_factor)
        with dr.resume_grad(when=attached):
            mei = medium.sample_interaction(ray, free_flight_sample(u, factor), mi.UInt32(0), active)
        mei.t = dr.detach(mei.t)
        mei.p = dr.detach(mei.p)
        σ_bar = factor * dr.detach(mei.combined_extinction[0])
        return mei, σ_bar, homogeneous

    @staticmethod
    def homogeneous_transmittance(mei: mi.MediumInteraction3f, t_end: mi.Float) -> mi.Spectrum:
        """exp(-σ_t t) to min(mei.t, t_end), differentiable in σ_t."""
        σ_t = mei.combined_extinction
        τ = (dr.minimum(mei.t, t_end) - mei.mint) * σ_t
        return dr.exp(-dr.select(σ_t == 0, 0.0, τ))   # σ_t = 0 over t = ∞ (no container hit): 1

    @dr.syntax
    def delta_tracking(self, mode: dr.ADMode, sampler: mi.Sampler, ray: mi.Ray3f,
                       medium: mi.MediumPtr, si_t: mi.Float, L: mi.Spectrum, L_dark: mi.Spectrum,
                       β: mi.Spectrum, δL: mi.Spectrum, active: mi.Bool):
        """Free flight from ``ray.o`` through null collisions to a real collision or ``si_t``.

        Returns (mei, real, dark, escaped, ray origin, si_t, β, δL); mei is
        detached. Replay: the radiance still to come, ``L``, is the same at
        every null collision of the flight and at its end, and receives ∂w/w
        of each weight; a dark collision (``dark``: real, weight 0) sends
        ∂w · ``L_dark``, the radiance the path collected after it.
        """
        primal = mode == dr.ADMode.Primal
        o = mi.Point3f(ray.o)
        d = mi.Vector3f(ray.d)
        t_surface = mi.Float(si_t)
        mei = dr.zeros(mi.MediumInteraction3f)
        real = mi.Bool(False)
        dark = mi.Bool(False)
        escaped = mi.Bool(False)
        tracking = mi.Bool(active)
        p_floor = P_REAL_MIN if self.dark_paths else 0.0
        dark_ok = mi.Bool(self.dark_paths)

        while dr.hint(tracking, label=f"pbdr_volume delta tracking ({mode.name})"):
            m, σ_bar, homogeneous = self.tentative_collision(
                medium, mi.Ray3f(o, d), sampler.next_1d(tracking), tracking, not primal)
            m.t[tracking & (t_surface < m.t)] = dr.inf
            hit = tracking & m.is_valid()
            P_r = dr.select(homogeneous, 1.0,
                            dr.clip(dr.mean(dr.detach(m.sigma_t)) / σ_bar, p_floor, 1.0))
            is_real = hit & (sampler.next_1d(hit) < P_r)
            null = hit & ~is_real
            with dr.resume_grad(when=not primal):
                # Heterogeneous: w_r = σ_s/(σ̄ P_r), w_n = σ_n/(σ̄ (1 - P_r)), escape 1.
                # Homogeneous: T(t) σ_s / p(t) and T(d) / P(t > d), p detached.
                T_h = self.homogeneous_transmittance(m, t_surface)
                p_h = dr.detach(T_h[0]) * dr.select(hit, σ_bar, 1.0)
                w_h = T_h * dr.select(hit, m.sigma_s, 1.0) * safe_rcp(p_h)
                w = dr.select(is_real, m.sigma_s * safe_rcp(σ_bar * P_r),
                              (σ_bar - m.sigma_t) * safe_rcp(σ_bar * (1 - P_r)))
                w = dr.select(homogeneous, w_h, dr.select(hit, w, 1.0))
                w = dr.select(tracking, w, 1.0)
                is_dark = is_real & dark_ok & dr.all(dr.detach(w) == 0)
                if dr.hint(not primal, mode="scalar"):
                    δL = propagate(mode, δL, L * relative(w, tracking) + dr.select(is_dark, L_dark * w, 0.0))
            β[tracking & ~is_dark] *= dr.detach(w)     # a dark path keeps β for what it collects next
            dark |= is_dark
            o[null] = m.p
            t_surface[null] = t_surface - m.t
            mei[is_real] = dr.detach(m)
            real |= is_real
            escaped |= tracking & ~hit
            tracking &= null

        return mei, real, dark, escaped, o, t_surface, β, δL

    @dr.syntax
    def ratio_tracking(self, mode: dr.ADMode, scene: mi.Scene, sampler: mi.Sampler,
                       ref: mi.Interaction3f, ds: mi.DirectionSample3f, medium: mi.MediumPtr,
                       active: mi.Bool, contrib: mi.Spectrum | None = None,
                       δL: mi.Spectrum | None = None) -> tuple[mi.Spectrum, mi.Spectrum]:
        """T̂ from ``ref`` to ``ds.p`` through media and null surfaces.

        Homogeneous segments contribute exp(-σ_t d) in one step. Primal:
        returns (T̂, δL). Replay (same random numbers): sends the derivative
        of ``contrib`` (which holds T̂) through each factor of T̂.
        """
        primal = mode == dr.ADMode.Primal
        active = mi.Bool(active)
        medium = dr.select(active, medium, dr.zeros(mi.MediumPtr))
        δL = mi.Spectrum(δL if δL is not None else 0)
        contrib = mi.Spectrum(contrib if contrib is not None else 0)
        ray = ref.spawn_ray_to(ds.p)
        max_dist = mi.Float(ray.maxt)
        dist = mi.Float(0.0)
        T = mi.Spectrum(1.0)
        si = dr.zeros(mi.SurfaceInteraction3f)
        needs_intersection = mi.Bool(True)

        while dr.hint(active, label=f"pbdr_volume ratio tracking ({mode.name})"):
            ray.maxt = max_dist - dist
            active &= ray.maxt > 0.0
            intersect = needs_intersection & active
            si[intersect] = scene.ray_intersect(ray, mi.RayFlags.All, False, intersect)
            needs_intersection = mi.Bool(False)

            in_medium = active & (medium != None)
            on_surface = active & ~in_medium
            mei, σ_bar, homogeneous = self.tentative_collision(
                medium, ray, sampler.next_1d(in_medium), in_medium, not primal)
            mei.t[in_medium & (si.t < mei.t)] = dr.inf
            mei.t[homogeneous] = dr.inf             # jumps to the surface / the end
            with dr.resume_grad(when=not primal):
                T_h = self.homogeneous_transmittance(mei, dr.minimum(si.t, ray.maxt))
            escaped = in_medium & ~mei.is_valid()
            in_medium &= mei.is_valid()

            with dr.resume_grad(when=not primal):
                tr = dr.select(in_medium, (σ_bar - mei.sigma_t) / σ_bar, 1.0)
                tr = dr.select(homogeneous, T_h, tr)
                if dr.hint(not primal, mode="scalar"):
                    δL = propagate(mode, δL, contrib * relative(tr, in_medium | homogeneous))

            ray.o[in_medium] = mei.p
            si.t[in_medium] = si.t - mei.t
            on_surface |= escaped
            on_surface &= si.is_valid() & ~in_medium
            bsdf = si.bsdf(ray)
            tr_surface = bsdf.eval_null_transmission(si, on_surface)
            T *= dr.detach(tr) * dr.select(on_surface, tr_surface, 1.0)

            ray[on_surface] = pass_through(ray, si)
            needs_intersection |= on_surface
            dist[active] += dr.select(in_medium, mei.t, si.t)
            active &= (in_medium | on_surface) & dr.any(T != 0.0)
            transition = on_surface & si.is_medium_transition()
            medium[transition] = si.target_medium(ray.d)

        return T, δL

    @dr.syntax
    def sample(self, mode: dr.ADMode, scene: mi.Scene, sampler: mi.Sampler,
               ray: mi.Ray3f, δL: mi.Spectrum | None, state_in: mi.Spectrum | None,
               active: mi.Bool, first_hit: bool = False, coherent: bool = True,
               first: mi.PreliminaryIntersection3f | None = None, medium: mi.MediumPtr | None = None,
               **mitsuba_kwargs) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        """``PbdrIntegrator.sample``; ``first_hit`` is not supported (the
        secondary-edge walker of media measures the distance itself)."""
        if first_hit:
            raise ValueError("pbdr_volume's sample() does not report first hits")
        primal = mode == dr.ADMode.Primal
        ctx = mi.BSDFContext()

        ray = mi.Ray3f(dr.detach(ray))
        depth = mi.UInt32(0)                        # real scattering events so far
        dark_paths = dr.hint(self.dark_paths, mode="scalar")
        # Radiance a path collects after a dark collision (σ_s = 0, weight 0): the primal has
        # none of it, the derivative ∂w_r times all of it (primal: accumulated; replay: given,
        # the state is then (L, L_dark)).
        L_dark = mi.Spectrum(0)
        if dr.hint(dark_paths and not primal, mode="scalar"):
            state_in, L_dark = state_in[0], mi.Spectrum(state_in[1])
        dark = mi.Bool(False)
        L = mi.Spectrum(0 if primal else state_in)  # primal: accumulated; replay: still to come
        δL = mi.Spectrum(δL if δL is not None else 0)
        β = mi.Spectrum(1)
        η = mi.Float(1)
        active = mi.Bool(active)
        valid = mi.Bool(False)

        # Cameras outside media; side rays of secondary edges say where they start.
        medium = mi.MediumPtr(medium) if medium is not None else dr.zeros(mi.MediumPtr)
        si = dr.zeros(mi.SurfaceInteraction3f)
        needs_intersection = mi.Bool(True)
        if first is not None:           # the first intersections, when the caller knows them
            si = first.compute_surface_interaction(ray, mi.RayFlags.All, active)
            needs_intersection = mi.Bool(False)
        last_event = dr.zeros(mi.Interaction3f)     # last real scattering vertex (MIS)
        last_pdf = mi.Float(1.0)
        specular_chain = mi.Bool(True)
        # Moving meshes (replay): the previous real vertex (volume_motion.Previous) and the
        # anchor (the last vertex on a moving mesh), one variable each: the loop's state;
        # none otherwise.
        moving = dr.hint(not primal and self.moving_meshes, mode="scalar")
        prev_surface = mi.Bool(False) if moving else None
        prev_medium_vertex = mi.Bool(False) if moving else None
        prev_moving = mi.Bool(False) if moving else None
        prev_material = mi.Float(0.0) if moving else None
        prev_ray = dr.zeros(mi.Ray3f) if moving else None
        prev_p = mi.Point3f(0.0) if moving else None
        prev_n = mi.Vector3f(0.0) if moving else None
        prev_wi = mi.Vector3f(0.0) if moving else None
        prev_wo = mi.Vector3f(0.0) if moving else None
        prev_medium = dr.zeros(mi.MediumPtr) if moving else None   # where the ray leaving it starts
        anchor_ray = dr.zeros(mi.Ray3f) if moving else None
        anchor_on = mi.Bool(False) if moving else None
        anchor_material = mi.Float(0.0) if moving else None

        while dr.hint(active, label=f"pbdr_volume ({mode.name})"):
            # ---- Termination: Russian roulette, depth ----
            active &= dr.any(β != 0.0)
            q = dr.minimum(dr.max(β) * dr.square(η), 0.95)
            rr = active & (depth > self.rr_depth)
            active &= (sampler.next_1d(active) < q) | ~rr
            β[rr & active] *= dr.rcp(q)   # survivors only: q > 0 there (a path whose β is 0 or
                                          # negative, which spectral null weights allow, stops)
            active &= depth < self.max_depth

            # ---- Free flight to a real collision or a surface (detached sampling) ----
            act_medium = active & (medium != None)
            act_surface = active & ~act_medium
            intersect = needs_intersection & act_medium
            si[intersect] = scene.ray_intersect(ray, intersect)
            needs_intersection &= ~act_medium
            mei, real, dark_hit, escaped, o, si_t, β, δL = self.delta_tracking(
                mode, sampler, ray, medium, si.t, L, L_dark, β, δL, act_medium)
            # A second dark collision: what follows carries two zero factors (no first-order term).
            # Replay: the dark collision sent its term; nothing after it has one.
            real &= ~(dark & dark_hit)
            active &= ~(dark & dark_hit) if primal else ~dark_hit
            dark |= dark_hit
            ray.o[act_medium] = o
            si.t[act_medium] = si_t
            depth[real] += 1
            last_event[real] = mei
            active &= depth < self.max_depth
            act_scatter = real & active
            act_medium = real

            # ---- Surface: emission found by the previous direction sample (MIS) ----
            act_surface |= escaped
            intersect = act_surface & needs_intersection
            si[intersect] = scene.ray_intersect(ray, intersect)
            emitter = si.emitter(scene)
            active_e = act_surface & (emitter != None)
            count_direct = (depth == 0) | specular_chain
            ds_hit = mi.DirectionSample3f(scene, si, last_event)
            pdf_em = scene.pdf_emitter_direction(last_event, ds_hit, active_e & ~count_direct)
            with dr.resume_grad(when=not primal):
                w_hit = dr.select(count_direct, 1.0, mis_weight(last_pdf, pdf_em))
                Le = β * w_hit * emitter.eval(si, active_e)
            act_surface &= si.is_valid()
            bsdf = si.bsdf(ray)
            si_ad, mei_ad = si, mei
            # Replay: everything this vertex adds, propagated once (its terms share the AD graph of
            # the moving point, which a propagation clears as it goes).
            Lo_vertex = mi.Spectrum(0.0) if dr.hint(not primal, mode="scalar") else None
            if dr.hint(moving, mode="scalar"):
                with dr.resume_grad():
                    prev = Previous(prev_surface, prev_medium_vertex, prev_moving, prev_material, prev_ray,
                                    prev_p, prev_n, prev_wi, prev_wo, prev_medium)
                    anchor = anchor_of(scene, anchor_ray, anchor_on, anchor_material)
                    vtx = vertex_terms(scene, sampler, ray, si, mei, act_surface, act_scatter, bsdf, medium,
                                       prev, anchor, self.drag_radius_in(scene), L)
                    si_ad, Lo_vertex = vtx.si, vtx.Lo
                    mei_ad = mi.MediumInteraction3f(mei)
                    mei_ad.wi = vtx.wi

            # ---- Next-event estimation from media and smooth surfaces ----
            nee_surface = act_surface & mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth) & \
                (depth + 1 < self.max_depth)
            nee_medium = act_scatter & mei.medium.use_emitter_sampling()
            nee = nee_surface | nee_medium
            ref = dr.zeros(mi.Interaction3f)
            ref[nee_medium] = mei
            ref[nee_surface] = si
            ds, em_weight = scene.sample_emitter_direction(ref, sampler.next_2d(nee), False, nee)
            nee &= ds.pdf != 0.0
            nee_medium &= nee
            nee_surface &= nee
            medium_em = dr.select(nee_surface & si.is_medium_transition(), si.target_medium(ds.d), medium)
            sampler_replay = sampler.clone() if dr.hint(not primal, mode="scalar") else sampler
            T, _ = self.ratio_tracking(dr.ADMode.Primal, scene, sampler, ref, ds, medium_em, nee)

            phase_ctx = mi.PhaseFunctionContext(sampler)
            phase = mei.medium.phase_function()
            phase[~act_scatter] = dr.zeros(mi.PhaseFunctionPtr)
            with dr.resume_grad(when=not primal):
                d_em = mi.Vector3f(ds.d)
                if dr.hint(not primal, mode="scalar"):
                    Le_em = scene.eval_emitter_direction(ref, ds, nee)
                    em_weight = dr.replace_grad(em_weight, Le_em * dr.select(ds.pdf != 0, dr.rcp(ds.pdf), 0))
                if dr.hint(moving, mode="scalar"):   # from the moving point to the fixed light sample
                    ds_ad, em_ad = attached_emitter_sample(scene, si_ad, ds, em_weight, nee_surface)
                    ds_m, em_m = attached_emitter_sample(scene, medium_point(mei, vtx.motion), ds, em_weight,
                                                         nee_medium)
                    em_weight = dr.select(nee_surface, em_ad, dr.select(nee_medium, em_m, em_weight))
                    d_em = dr.select(nee_surface, ds_ad.d, dr.select(nee_medium, ds_m.d, d_em))
                f_bsdf, pdf_bsdf = bsdf.eval_pdf(ctx, si_ad, si_ad.to_local(d_em), nee_surface)
                f_phase, pdf_phase = phase.eval_pdf(phase_ctx, mei_ad, d_em, nee_medium)
                f_em = dr.select(nee_surface, f_bsdf, f_phase)
                # MIS weights are held fixed, as on the BSDF-hit side.
                pdf_dir = dr.detach(dr.select(ds.delta, 0.0, dr.select(nee_surface, pdf_bsdf, pdf_phase)))
                Lr_em = dr.select(nee, β * f_em * mis_weight(ds.pdf, pdf_dir) * em_weight * T, 0.0)
                if dr.hint(primal and dark_paths, mode="scalar"):
                    L_dark += dr.select(dark, dr.detach(Le + Lr_em), 0.0)
                    L += dr.select(dark, 0.0, dr.detach(Le + Lr_em))
                elif dr.hint(primal, mode="scalar"):
                    L += dr.detach(Le + Lr_em)
                else:
                    L -= dr.detach(Le + Lr_em)
                if dr.hint(not primal, mode="scalar"):
                    Lo_vertex += Le + Lr_em
                if dr.hint(moving, mode="scalar"):   # the light sample's optical depth as the point moves
                    Lo_vertex += light_sample_terms(scene, ref, ds, vtx.motion, medium_em, Lr_em, nee)
            if dr.hint(not primal, mode="scalar"):
                _, δL = self.ratio_tracking(mode, scene, sampler_replay, ref, ds, medium_em, nee,
                                            dr.detach(Lr_em), δL)

            # ---- Phase function sampling (detached; g is not differentiated) ----
            wo, phase_weight, phase_pdf = phase.sample(phase_ctx, mei, sampler.next_1d(act_scatter),
                                                       sampler.next_2d(act_scatter), act_scatter)
            act_scatter &= phase_pdf > 0.0
            if dr.hint(moving, mode="scalar"):
                with dr.resume_grad():   # the phase value as the incident direction moves
                    f_p = mi.Spectrum(phase.eval_pdf(phase_ctx, mei_ad, wo, act_scatter)[0])
                    Lo_vertex += L * relative(f_p, act_scatter)
                prev_surface &= ~act_scatter
                prev_moving &= ~act_scatter
                prev_medium_vertex |= act_scatter
                prev_p[act_scatter] = mei.p
                prev_wi[act_scatter] = mei.wi
                prev_wo[act_scatter] = wo
                prev_medium[act_scatter] = medium
            β[act_scatter] *= phase_weight
            ray[act_scatter] = mei.spawn_ray(wo)
            needs_intersection |= act_scatter
            last_pdf[act_scatter] = phase_pdf
            specular_chain &= ~act_scatter
            valid |= act_scatter

            # ---- BSDF sampling (detached), then the BSDF value's derivative ----
            bs, bsdf_weight = bsdf.sample(ctx, si, sampler.next_1d(act_surface),
                                          sampler.next_2d(act_surface), act_surface)
            act_surface &= bs.pdf > 0.0
            if dr.hint(not primal, mode="scalar"):
                with dr.resume_grad():
                    wo_local = bs.wo
                    if dr.hint(moving, mode="scalar"):   # the world direction is what stays fixed
                        wo_local = si_ad.to_local(si.to_world(bs.wo))
                    f = bsdf.eval(ctx, si_ad, wo_local, act_surface)
                    δL = propagate(mode, δL, Lo_vertex + L * relative(f, act_surface))
            β[act_surface] *= bsdf_weight
            η[act_surface] *= bs.eta
            null_sampled = act_surface & mi.has_flag(bs.sampled_type, mi.BSDFFlags.Null)
            non_null = act_surface & ~null_sampled
            if dr.hint(moving, mode="scalar"):
                on_moving = non_null & vtx.moving
                anchor_ray[on_moving] = mi.Ray3f(ray)
                anchor_on |= on_moving
                anchor_material[on_moving] = dr.detach(vtx.material)
                prev_material[non_null] = dr.detach(vtx.material)
                prev_surface |= non_null
                prev_medium_vertex &= ~non_null
                prev_moving[non_null] = on_moving
                prev_ray[non_null] = mi.Ray3f(ray)
                prev_p[non_null] = si.p
                prev_n[non_null] = si.n
                prev_wo[non_null] = si.to_world(bs.wo)
            ray[act_surface] = dr.select(null_sampled, pass_through(ray, si),
                                         si.spawn_ray(si.to_world(bs.wo)))
            needs_intersection |= act_surface
            depth[non_null] += 1
            last_event[non_null] = si
            last_pdf[non_null] = bs.pdf
            valid |= non_null
            specular_chain |= non_null & mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)
            specular_chain &= ~(act_surface & mi.has_flag(bs.sampled_type, mi.BSDFFlags.Smooth))
            transition = act_surface & si.is_medium_transition()
            medium[transition] = si.target_medium(ray.d)
            if dr.hint(moving, mode="scalar"):
                prev_medium[non_null] = medium
            active &= act_surface | act_medium

        state = (L, L_dark) if dark_paths else L
        return (L if primal else δL), valid, [], state


class VolumeIntegrator(with_boundary_terms(VolumeInterior)):
    __doc__ = __doc__
    plugin_name = "pbdr_volume"
    samples_terminators = True
    term_types = (PrimaryEdges, SecondaryEdgesInMedia, FlightEnds)
