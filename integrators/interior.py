r"""
pbdr_interior: the interior term of the derivative, by path replay
===================================================================

The image is a path integral :math:`I = \int_\Omega f(\bar{x}, \pi)\, d\mu(\bar{x})`.
When a parameter :math:`\pi` moves, :math:`\partial_\pi I` splits into an
*interior* term, the integral of :math:`\partial_\pi f` over paths whose
visibility does not change, and a *boundary* term over the discontinuities
of :math:`f` (silhouettes, shadow edges). This integrator estimates the
interior term only:

.. math::

    \partial_\pi I \approx \frac{1}{N} \sum_i
    \frac{\partial_\pi f(\bar{x}_i, \pi)}{p(\bar{x}_i)} \Big|_{\text{visibility detached}}

with path replay (Vicini, Speierer, Jakob 2021, "Path Replay
Backpropagation"): a primal pass computes the radiance :math:`L` of every
path; a second pass replays the *same* random numbers and, at each vertex,
differentiates only the local factors (emission, BSDF, cosine, emitter
sample weight), using the radiance still to come, :math:`L - L_{\le k}`, as
the incident radiance. Memory is constant in path depth.

Forward mode needs no replay: with :math:`\beta_k = \prod_{j<k} r_j` (the
local factors :math:`r_j = f_s J / p`) and :math:`c_k` the vertex's
emission and next-event terms, :math:`\partial L = \sum_k \beta_k
(\partial c_k + c_k \rho_k)` with :math:`\rho_k = \sum_{j<k} \partial r_j /
r_j`, so one pass carries the relative tangent :math:`\rho` of the
throughput forward. It is the replay's sum in another order (equal to
rounding for the same seed), traced once instead of twice (primal and replay).

The vertex after a moving point is held fixed in space (the Jacobian
:math:`|\cos\theta_y|/r^2` carries the motion), or, where ``first_bounce``
says so (``pbdr_edge``), in solid angle: after the camera vertex, or with
``solid_angle_after`` ``moving`` after any vertex on a moving mesh, its ray
keeps its direction and starts at the moving vertex, and a next-event
sample keeps its direction and reaches the emitter where that ray meets it
(``solid_angle_rays``, ``directional_emitter_sample``).

Sampling is detached (directions do not move with :math:`\pi`) and shadow
rays are plain visibility tests, so edges and silhouettes contribute nothing
here; ``pbdr_edge`` and ``pbdr_reparam`` add them. The primal image is an
unbiased estimate of Mitsuba's ``path`` integrator's.

Estimator per vertex :math:`k` (:math:`\beta_k` the path throughput):

- emission hit by BSDF sampling, MIS-weighted: :math:`\beta_k\, w_{bsdf}\, L_e`,
- next-event estimation, MIS-weighted: :math:`\beta_k\, w_{em}\, f_s \cos\theta\, L_e / p_{em}`,
- Russian roulette after ``rr_depth`` bounces.

Plugin parameters
-----------------
- ``max_depth`` (int, default 6): longest path, -1 for no limit; 1 shows
  emitters only, 2 direct light.
- ``rr_depth`` (int, default 5): depth at which Russian roulette starts.
- ``hide_emitters`` (bool, default false): hide directly visible emitters.
"""
from __future__ import annotations

from typing import Any

import drjit as dr
import mitsuba as mi

from mitsuba.ad.integrators.common import RBIntegrator, mis_weight

from pbdr.geometry.measure import area_jacobian, attached_emitter_sample
from pbdr.geometry.moving import moving_meshes, on_meshes
from pbdr.geometry.terminators import on_smooth_mesh
from pbdr.integrators.base import PbdrIntegrator


def path_stream(sampler: mi.Sampler) -> tuple[mi.UInt64, mi.UInt64]:
    """A PCG32 stream per lane, seeded from two of ``sampler``'s numbers:
    (state, increment). The path loop draws from it instead of the sampler:
    the loop state then holds the state only. The sampler's increment never
    changes in the loop, and a loop state variable that never changes makes
    Dr.Jit trace the loop body twice."""
    a, b = (dr.reinterpret_array(mi.UInt32, sampler.next_1d()) for _ in range(2))
    s0, s1 = mi.sample_tea_32(a, b)
    rng = mi.PCG32(dr.width(a), mi.UInt64(s0), mi.UInt64(s1))
    return rng.state, rng.inc


def next_uniform(state: mi.UInt64, inc: mi.UInt64) -> tuple[mi.Float, mi.UInt64]:
    """A uniform number in [0, 1) from the stream, and the stream's next state."""
    rng = mi.PCG32()
    rng.state, rng.inc = state, inc
    u = rng.next_float32()
    return u, rng.state


def next_2d(state: mi.UInt64, inc: mi.UInt64) -> tuple[mi.Point2f, mi.UInt64]:
    u, state = next_uniform(state, inc)
    v, state = next_uniform(state, inc)
    return mi.Point2f(u, v), state


def directional_emitter_sample(scene: mi.Scene, si: mi.SurfaceInteraction3f, ds: mi.DirectionSample3f,
                               em_weight: mi.Spectrum, active: mi.Bool
                               ) -> tuple[mi.Vector3f, mi.Spectrum, mi.Bool]:
    """An emitter sample (drawn without AD) held in solid angle from a moving
    shading point ``si``: its direction stays, and the point it reaches on
    a surface emitter slides there, its radiance re-evaluated with AD; the
    weight is that radiance over the detached pdf. Returns (direction,
    weight, lanes it applies to: visible samples of surface emitters)."""
    on = active & mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Surface)
    on &= dr.any(mi.unpolarized_spectrum(em_weight) != 0)      # visible
    d = dr.detach(ds.d)
    ray = dr.detach(si).spawn_ray(d)
    pi = scene.ray_intersect_preliminary(ray, coherent=False, active=on)
    ray.o = dr.replace_grad(ray.o, si.p)
    si_em = pi.compute_surface_interaction(ray, mi.RayFlags.All, on & pi.is_valid())
    on &= si_em.is_valid() & (si_em.shape.emitter() == ds.emitter)
    value = ds.emitter.eval(si_em, on)
    inv_pdf = dr.select(ds.pdf != 0, dr.rcp(ds.pdf), 0.0)
    return d, dr.replace_grad(em_weight, value * dr.detach(inv_pdf)), on


FIRST_BOUNCE = ("area", "direction", "auto")
SOLID_ANGLE_AFTER = ("camera", "moving")


def read_first_bounce(props: mi.Properties, default: str) -> str:
    """The ``first_bounce`` plugin parameter of integrators whose boundary
    terms follow it (``InteriorIntegrator.first_bounce``)."""
    value = str(props.get("first_bounce", default))
    if value not in FIRST_BOUNCE:
        raise ValueError(f"first_bounce must be one of {', '.join(FIRST_BOUNCE)}, got {value}")
    return value


def read_solid_angle_after(props: mi.Properties, default: str) -> str:
    """The ``solid_angle_after`` plugin parameter (``InteriorIntegrator.solid_angle_after``)."""
    value = str(props.get("solid_angle_after", default))
    if value not in SOLID_ANGLE_AFTER:
        raise ValueError(f"solid_angle_after must be one of {', '.join(SOLID_ANGLE_AFTER)}, got {value}")
    return value


def _cut_paths(L_cut: list, cutoffs: tuple[int, ...], depth: mi.UInt32, Le: mi.Spectrum,
               Lr_em: mi.Spectrum) -> list:
    """``L_cut`` with vertex ``depth``'s emission (a path of depth + 1 segments)
    and next event (depth + 2) added where the path fits under each cutoff."""
    return [L + dr.select(depth + 1 <= c, Le, 0.0) + dr.select(depth + 2 <= c, Lr_em, 0.0)
            for L, c in zip(L_cut, cutoffs)]


class InteriorIntegrator(PbdrIntegrator):
    __doc__ = __doc__
    plugin_name = "pbdr_interior"
    #: Where the vertex after the camera vertex is held in solid angle from
    #: the moving camera vertex (its ray keeps its direction and follows the
    #: camera vertex) instead of fixed in space: ``area`` nowhere,
    #: ``direction`` everywhere, ``auto`` where the camera vertex is not on a
    #: smooth-shaded mesh. ``pbdr_edge``'s ``first_bounce``, whose boundary
    #: terms match it; see ``first_bounce_mask``.
    first_bounce: str = "area"
    #: Which vertices hold the next one in solid angle where ``first_bounce``
    #: allows it: the camera vertex only (``camera``), or every vertex on a
    #: moving mesh (``moving``; see ``holds_next_in_solid_angle``).
    solid_angle_after: str = "camera"
    #: With ``solid_angle_after`` ``moving``: at most this many vertices in a
    #: row hold their successor in solid angle (each moves with the one before
    #: it; path replay recomputes the chain at every vertex).
    solid_angle_chain: int = 1
    # Mitsuba's base class reads max_depth, rr_depth and hide_emitters. Subclasses
    # that set ``warps_directions`` (pbdr_reparam) share the path tracer below.

    def first_bounce_mask(self, scene: mi.Scene, shape: mi.ShapePtr, active: mi.Bool) -> mi.Bool:
        """Lanes whose camera vertex (on ``shape``) holds the next vertex in solid angle."""
        if self.first_bounce == "auto":
            return active & ~on_smooth_mesh(scene, shape, active)
        return active & (self.first_bounce == "direction")

    def holds_next_in_solid_angle(self, scene: mi.Scene, shape: mi.ShapePtr, depth: mi.UInt32,
                                  held_before: list, moving: list, active: mi.Bool) -> mi.Bool:
        """Lanes whose vertex ``depth`` (on ``shape``) holds the next vertex in
        solid angle: the camera vertex where ``first_bounce_mask`` says so;
        with ``solid_angle_after`` ``moving``, any vertex that moves (on one
        of the ``moving`` meshes, or held in solid angle from the previous
        vertex) where that mask says so, unless the ``solid_angle_chain``
        vertices before it all hold (``held_before``: whether the previous
        vertex, the one before it, ... holds its successor). A static vertex
        holds nothing: held or not, it is the same derivative, and one that
        held would use up the chain."""
        held = self.first_bounce_mask(scene, shape, active)
        if self.solid_angle_after == "camera":
            return held & (depth == 0)
        moves = held_before[0] | on_meshes(shape, moving, active)
        chain_full = mi.Bool(True)
        for h in held_before[:self.solid_angle_chain]:
            chain_full &= h
        return held & moves & ~chain_full

    # ---- hooks for estimators that reparameterize directions ----
    def warp_key(self, u: mi.Float) -> mi.UInt32 | None:
        """Per-vertex random key for auxiliary samples from the uniform ``u``,
        drawn in every pass when ``warps_directions`` so that primal and
        replay see the same path. None here: the interior term needs none."""
        return None

    def warp_ray(self, scene: mi.Scene, key: mi.UInt32 | None, ray: mi.Ray3f, depth: mi.UInt32,
                 active: mi.Bool) -> tuple[mi.Ray3f, mi.Float | None]:
        """The ray to vertex ``depth`` with an attached (warped) direction and
        the Jacobian determinant of the warp (None: identity, no warp)."""
        return ray, None

    def attach_interaction(self, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                           active: mi.Bool) -> mi.SurfaceInteraction3f:
        """Fix up the derivatives of an interaction along a warped ray."""
        return si

    def warp_terms(self, L_in: mi.Spectrum, det: mi.Float, ray: mi.Ray3f,
                   si_prev: mi.SurfaceInteraction3f, depth: mi.UInt32,
                   active: mi.Bool) -> mi.Spectrum:
        """Derivative terms of a warped ray: ``L_in`` (everything it carries)
        times the change of the Jacobian and of the previous vertex's BSDF."""
        return mi.Spectrum(0.0)

    def emitter_sample_weight(self, scene: mi.Scene, si: mi.SurfaceInteraction3f,
                              ds: mi.DirectionSample3f, em_weight: mi.Spectrum,
                              active: mi.Bool, key: mi.UInt32 | None = None
                              ) -> tuple[mi.DirectionSample3f, mi.Spectrum]:
        """Re-attach an emitter sample drawn without AD (``attached_emitter_sample``);
        ``pbdr_reparam`` also warps it."""
        return attached_emitter_sample(scene, si, ds, em_weight, active)

    def solid_angle_rays(self, ray_k: mi.Ray3f, back: list) -> tuple[mi.Ray3f, mi.Ray3f]:
        """The rays to the previous and the current vertex where vertices are
        held in solid angle. ``back`` lists (ray, hit, holds its successor)
        of the vertices before this one, the oldest first: a ray after a
        vertex that holds starts at that vertex, recomputed (attached) from
        its own ray, itself attached to the vertex before it if that one
        holds, and so on. The oldest vertex's ray starts at a point fixed in
        space (no more than ``solid_angle_chain`` vertices in a row hold)."""
        origin, held = None, None
        for ray_j, pi_j, held_j in back:
            ray_j = mi.Ray3f(ray_j)
            if origin is not None:
                ray_j.o = dr.select(held, dr.replace_grad(ray_j.o, origin), ray_j.o)
            origin, held = pi_j.compute_surface_interaction(ray_j, mi.RayFlags.Minimal, held_j).p, held_j
        ray_k = mi.Ray3f(ray_k)
        ray_k.o = dr.select(held, dr.replace_grad(ray_k.o, origin), ray_k.o)
        return ray_j, ray_k

    def render_forward(self, scene: mi.Scene, params: Any, sensor: int | mi.Sensor = 0,
                       seed: mi.UInt32 = 0, spp: int = 0) -> mi.TensorXf:
        """Forward-mode derivative image in one pass (no replay, see the docstring)."""
        if self.warps_directions:     # the warp's terms need the radiance still to come
            return super().render_forward(scene, params, sensor, seed, spp)
        if isinstance(sensor, int):
            sensor = scene.sensors()[sensor]
        film = sensor.film()
        with dr.suspend_grad():
            sampler, spp = self.prepare(sensor, seed, spp, self.aov_names())
            ray, weight, pos = self.sample_rays(scene, sensor, sampler)
            δL, valid, _, _ = self.sample(dr.ADMode.Forward, scene, sampler, ray, None, None,
                                          mi.Bool(True))
            block = film.create_block()
            block.set_coalesce(block.coalesce() and spp >= 4)
            RBIntegrator._splat_to_block(block, film, pos, value=δL * weight, weight=1.0,
                                         alpha=dr.select(valid, mi.Float(1), mi.Float(0)), aovs=[],
                                         wavelengths=ray.wavelengths)
            film.put_block(block)
            return film.develop()

    def sample(self, mode: dr.ADMode, scene: mi.Scene, sampler: mi.Sampler,
               ray: mi.Ray3f, δL: mi.Spectrum | None, state_in: mi.Spectrum | None,
               active: mi.Bool, first_hit: bool = False, coherent: bool = True,
               first: mi.PreliminaryIntersection3f | None = None, medium: mi.MediumPtr | None = None,
               cutoffs: tuple[int, ...] = (), **mitsuba_kwargs) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        """``PbdrIntegrator.sample`` (surfaces only: ``medium`` is ignored).
        ``cutoffs`` (primal only): after the AOVs, also the radiance of the
        same paths cut to at most c segments, for each c (a path of c
        segments is one of ``max_depth`` c that draws the same numbers)."""
        # Dr.Jit records a loop a second time when it can drop state variables
        # that never change. Loop-invariant reads are kept out of the state
        # (``exclude``); OptimizeLoops off keeps the constants (zero fields of
        # the first vertex's predecessor, the rays' time) instead of folding
        # them: one recording instead of two, for a few more registers.
        with dr.scoped_set_flag(dr.JitFlag.OptimizeLoops, False):
            return self.trace_paths(mode, scene, sampler, ray, δL, state_in, active, first_hit, coherent,
                                    first, cutoffs)

    @dr.syntax
    def trace_paths(self, mode: dr.ADMode, scene: mi.Scene, sampler: mi.Sampler,
                    ray: mi.Ray3f, δL: mi.Spectrum | None, state_in: mi.Spectrum | None,
                    active: mi.Bool, first_hit: bool, coherent: bool = True,
                    first: mi.PreliminaryIntersection3f | None = None, cutoffs: tuple[int, ...] = ()
                    ) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        primal = mode == dr.ADMode.Primal
        assert primal or not cutoffs
        # Forward mode without a primal state: one pass, the throughput's
        # relative tangent ρ carried forward (see the docstring).
        one_pass = mode == dr.ADMode.Forward and state_in is None and not self.warps_directions
        ctx = mi.BSDFContext()

        ray = mi.Ray3f(dr.detach(ray))
        depth = mi.UInt32(0)
        # primal and one pass: accumulated; replay: still to come
        L = mi.Spectrum(0 if primal or one_pass else state_in)
        δL = None if primal else mi.Spectrum(δL if δL is not None else 0)   # None: no loop state
        ρ = mi.Spectrum(0) if one_pass else None
        β = mi.Spectrum(1)
        η = mi.Float(1)
        active = mi.Bool(active)
        rng, inc = path_stream(sampler)

        if first is None:
            pi = scene.ray_intersect_preliminary(ray, coherent=coherent, reorder=False, active=active)
        else:
            pi = dr.select(active, first, dr.zeros(mi.PreliminaryIntersection3f))
        aovs = [dr.select(pi.is_valid(), pi.t, dr.inf)] if first_hit else []
        L_cut = [mi.Spectrum(0) for _ in cutoffs]     # (no loop state without cutoffs)
        if dr.hint(self.hide_emitters, mode="scalar"):
            # Step over directly visible area emitters.
            on_emitter = pi.is_valid() & (pi.shape.emitter() != None) & active
            si_skip = pi.compute_surface_interaction(ray, mi.RayFlags.Minimal, on_emitter)
            pi[on_emitter] = self.skip_area_emitters(scene, si_skip.spawn_ray(ray.d), True, on_emitter)

        # Vertices held in solid angle (``first_bounce``, ``solid_angle_after``):
        # the moving meshes, and whether the previous vertex holds this one.
        directional = self.first_bounce != "area" and not self.warps_directions and not primal
        with dr.resume_grad(when=directional):
            moving = moving_meshes(scene) if directional else []
        prev_held = mi.Bool(False)
        # The previous vertex (MIS of emitters hit by BSDF sampling) and those
        # before it, newest first (a vertex held in solid angle moves with its
        # predecessor, which may move with its own: up to solid_angle_chain).
        pi_prev = dr.zeros(mi.PreliminaryIntersection3f)
        deep = 0 if not directional else self.solid_angle_chain if self.solid_angle_after == "moving" else 1
        deep_pi = [dr.zeros(mi.PreliminaryIntersection3f) for _ in range(deep)]
        deep_held = [mi.Bool(False) for _ in range(deep)]
        # The loop carries the rays' origin, direction and extent; their time
        # and wavelengths never change along a path and stay out of its state.
        time, wavelengths = ray.time, ray.wavelengths
        o, d, maxt = ray.o, ray.d, ray.maxt
        o_prev, d_prev, maxt_prev = o, d, maxt
        deep_o, deep_d, deep_maxt = [o] * deep, [d] * deep, [maxt] * deep
        si_prev = dr.zeros(mi.SurfaceInteraction3f)
        pdf_prev = mi.Float(1.0)
        delta_prev = mi.Bool(True)

        while dr.hint(active, max_iterations=self.max_depth,
                      exclude=[inc, time, wavelengths],
                      label=f"pbdr_interior ({mode.name})"):
            active_next = mi.Bool(active)
            ray_k = mi.Ray3f(o, d, maxt, time, wavelengths)
            ray_prev = mi.Ray3f(o_prev, d_prev, maxt_prev, time, wavelengths)
            u_key, rng = next_uniform(rng, inc) if self.warps_directions else (None, rng)
            key = self.warp_key(u_key)
            warped = dr.hint(self.warps_directions and not primal, mode="scalar")

            # The shading point moves with the shape (interior term); in the
            # primal pass this is an ordinary intersection. A subclass may
            # warp the ray so that it follows moving discontinuities.
            with dr.resume_grad(when=not primal):
                ray_ad, det = ray_k, None
                if dr.hint(directional, mode="scalar"):
                    # After a vertex held in solid angle this one lies along a
                    # ray from it (direction fixed); one vertex later, the
                    # predecessor is that point.
                    back = [(mi.Ray3f(deep_o[j], deep_d[j], deep_maxt[j], time, wavelengths), deep_pi[j],
                             active & deep_held[j]) for j in reversed(range(deep))]
                    ray_prev, ray_ad = self.solid_angle_rays(ray_k, back + [(ray_prev, pi_prev, active & prev_held)])
                if dr.hint(warped, mode="scalar"):
                    ray_ad, det = self.warp_ray(scene, key, ray_k, depth, active)
                    Lo_warp = self.warp_terms(L, det, ray_ad, si_prev, depth, active)
                si = pi.compute_surface_interaction(ray_ad, ray_flags=mi.RayFlags.All)
                if dr.hint(warped, mode="scalar"):
                    si = self.attach_interaction(si, ray_ad, active)
                sees_along_ray = mi.Bool(prev_held)     # (read here: not an if's state)
                if (not primal) & mi.Bool(depth >= 1):
                    # The incident direction follows the previous vertex's
                    # motion (and the warp of the ray, if any: then si.p
                    # slides across the ray, otherwise it moves along it).
                    si_prev_ad = pi_prev.compute_surface_interaction(ray_prev, mi.RayFlags.Minimal)
                    si_prev = dr.replace_grad(si_prev, si_prev_ad)
                    wi = dr.normalize(si_prev.p - (si.p if warped else dr.detach(si.p)))
                    wi = dr.replace_grad(si.wi, dr.detach(si).to_local(wi))
                    # held in solid angle, it sees the previous vertex along -d
                    si.wi = dr.select(sees_along_ray, si.wi, wi)
            bsdf = si.bsdf(ray_k)
            held = mi.Bool(False)
            if dr.hint(directional, mode="scalar"):
                held = self.holds_next_in_solid_angle(scene, si.shape, depth, [prev_held] + deep_held, moving,
                                                      si.is_valid() & active)

            # ---- Emission found by the previous BSDF sample (MIS) ----
            if dr.hint(self.hide_emitters, mode="scalar"):
                active_next &= ~((depth == 0) & ~si.is_valid())
            ds_hit = mi.DirectionSample3f(scene, si=si, ref=si_prev)
            w_bsdf = mis_weight(pdf_prev, scene.pdf_emitter_direction(si_prev, ds_hit, ~delta_prev))
            with dr.resume_grad(when=not primal):
                Le = β * w_bsdf * ds_hit.emitter.eval(si, active_next)

            # ---- Next-event estimation (shadow ray detached) ----
            active_next &= (depth + 1 < self.max_depth) & si.is_valid()
            active_em = active_next & mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth)
            u_em, rng = next_2d(rng, inc)
            ds, em_weight = scene.sample_emitter_direction(si, u_em, True, active_em)
            active_em &= ds.pdf != 0.0
            with dr.resume_grad(when=not primal):
                if dr.hint(directional, mode="scalar"):
                    d_em, em_dir, on_em = directional_emitter_sample(scene, si, ds, em_weight,
                                                                     active_em & held)
                if dr.hint(not primal, mode="scalar"):
                    ds, em_weight = self.emitter_sample_weight(scene, si, ds, em_weight, active_em, key)
                if dr.hint(directional, mode="scalar"):
                    ds.d = dr.select(on_em, d_em, ds.d)
                    em_weight = dr.select(on_em, em_dir, em_weight)
                f_em, pdf_em = bsdf.eval_pdf(ctx, si, si.to_local(ds.d), active_em)
                w_em = dr.select(ds.delta, 1.0, mis_weight(ds.pdf, pdf_em))
                if dr.hint(directional, mode="scalar"):
                    # both strategies hold the emitter point in solid angle
                    w_em = dr.select(held, dr.detach(w_em), w_em)
                Lr_em = β * w_em * f_em * em_weight

            # ---- BSDF sampling (detached) ----
            u_lobe, rng = next_uniform(rng, inc)
            u_dir, rng = next_2d(rng, inc)
            bs, bsdf_weight = bsdf.sample(ctx, si, u_lobe, u_dir, active_next)
            if dr.hint(primal or one_pass, mode="scalar"):
                L = L + dr.detach(Le + Lr_em)
            else:
                L = L - Le - Lr_em
            # (vertex ``depth`` ends a path of depth + 1 segments; its next event, of depth + 2)
            L_cut = _cut_paths(L_cut, cutoffs, depth, Le, Lr_em)
            ray_next = si.spawn_ray(si.to_world(bs.wo))
            η *= bs.eta
            β *= bsdf_weight

            si_prev = dr.detach(si, True)
            pdf_prev = bs.pdf
            delta_prev = mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)

            # ---- Russian roulette ----
            β_max = dr.max(mi.unpolarized_spectrum(β))
            active_next &= β_max != 0
            q = dr.minimum(β_max * η**2, 0.95)
            rr_on = depth >= self.rr_depth
            β[rr_on] *= dr.rcp(q)
            u_rr, rng = next_uniform(rng, inc)
            active_next &= ~rr_on | (u_rr < q)

            pi_next = scene.ray_intersect_preliminary(ray_next, coherent=False, reorder=False,
                                                      active=active_next)

            # ---- Replay: differentiate this vertex's local factors ----
            if dr.hint(not primal, mode="scalar"):
                si_next = pi_next.compute_surface_interaction(ray_next, mi.RayFlags.Minimal, active_next)
                with dr.resume_grad():
                    hit_next = active_next & si_next.is_valid()
                    # Outgoing direction and geometry term follow this vertex's motion.
                    if dr.hint(directional, mode="scalar"):
                        hit_next &= ~held     # the next vertex held in solid angle: no Jacobian
                    J = area_jacobian(si.p, si_next.p, si_next.n, hit_next)
                    J = dr.select(hit_next, J, 1.0)
                    wo = dr.replace_grad(ray_next.d, dr.select(hit_next, dr.normalize(si_next.p - si.p),
                                                               ray_next.d))
                    f = bsdf.eval(ctx, si, si.to_local(wo), active_next)
                    r = dr.relative_grad(f) * dr.relative_grad(J)   # value 1, tangent δ(f·J)/(f·J)
                    if dr.hint(one_pass, mode="scalar"):
                        # This vertex's terms carry the throughput's tangent so
                        # far; the throughput then changes by f·J's.
                        c = Le + Lr_em
                        δc, δr = dr.forward_to(c, r)
                        δL += δc + ρ * dr.detach(c)
                        ρ += δr
                    else:
                        # L now holds the radiance arriving from beyond this
                        # vertex: scale it by the relative change of f·J.
                        Lo = Le + Lr_em + L * r
                        if dr.hint(warped, mode="scalar"):
                            Lo += Lo_warp
                        if dr.hint(mode == dr.ADMode.Backward, mode="scalar"):
                            dr.backward_from(δL * Lo)
                        else:
                            δL += dr.forward_to(Lo)

            depth[si.is_valid()] += 1
            active = active_next
            deep_pi, deep_held = ([pi_prev] + deep_pi)[:deep], ([prev_held] + deep_held)[:deep]
            deep_o, deep_d, deep_maxt = ([o_prev] + deep_o)[:deep], ([d_prev] + deep_d)[:deep], \
                ([maxt_prev] + deep_maxt)[:deep]
            pi_prev, o_prev, d_prev, maxt_prev, prev_held = pi, o, d, maxt, held
            pi, o, d, maxt = pi_next, ray_next.o, ray_next.d, ray_next.maxt

        return (L if primal else δL), depth != 0, aovs + L_cut, L
