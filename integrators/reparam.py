r"""
pbdr_reparam: boundary derivatives by warped-area reparameterization
====================================================================

A pixel (or a shading point's hemisphere) integrates an integrand that
jumps where silhouettes are: :math:`I(\pi) = \int f(\omega, \pi)\, d\omega`.
When :math:`\pi` moves those jumps, differentiating under the integral misses
their motion (that is all ``pbdr_interior`` sees). A change of variables
:math:`\omega = T_\pi(\omega')` with :math:`T_{\pi_0} = \mathrm{id}` whose
velocity :math:`\mathcal{V} = \partial_\pi T` equals the motion of every
discontinuity makes the integrand continuous in :math:`\omega'`, and then

.. math::

    \partial_\pi I = \int \partial_\pi\big[f(T_\pi(\omega'), \pi)\big]
                     + f\, \nabla_{\!\omega}\!\cdot\mathcal{V}\; d\omega' .

The velocity field is the warped-area one of Bangaru, Li, Durand 2020
("Unbiased Warped-Area Sampling for Differentiable Rendering"), a weighted
convolution of the motions of what auxiliary rays see, in the spirit of
Loubet, Holzschuch, Jakob 2019 ("Reparameterizing Discontinuous Integrands
for Differentiable Rendering"):

.. math::

    \mathcal{V}(\omega) = \frac{\sum_i w_i\, \partial_\pi \hat\omega_i}{\sum_i w_i},
    \qquad w_i = \frac{1}{p_{\mathrm{vMF}}(\omega_i)\,\big(D(\omega, \omega_i) + B(\omega_i)\big)^{\gamma}},
    \qquad D = e^{\kappa(1 - \omega\cdot\omega_i)} - 1,

:math:`\omega_i` drawn from a von Mises-Fisher lobe of concentration
:math:`\kappa` around :math:`\omega`, :math:`\hat\omega_i` the direction to
the point that ray hits, attached to the shape's motion (``FollowShape``:
rigid for ``to_world`` and meshes, along the normal for ``sdfgrid`` grid
values), and :math:`B` a boundary test that vanishes on discontinuities,
measured in the units of :math:`D`: :math:`B = \kappa\,\delta^2/2` for the
angular distance :math:`\delta` from :math:`\omega_i` to the nearest
discontinuity seen from the ray's origin (at most ``B_FAR``):

- triangle meshes: the angle between :math:`\omega_i` and the plane through
  the origin and each edge of the hit triangle that can be a discontinuity
  (open boundaries and shading creases always, smooth edges when they are
  silhouettes from the origin, never the diagonal between coplanar faces;
  ``pbdr.geometry.face_edges``). A sliver face seen edge-on is near its
  edges, as it should be;
- ``sdfgrid``: the depth :math:`a^2/(2k)` by which the ray dips below the
  surface (:math:`a, k` the first and second derivatives of the SDF along
  the ray, from second differences two voxels apart), seen from the origin:
  for a sphere of radius :math:`r` at distance :math:`t`,
  :math:`\delta = r\,(n\cdot\omega_i)^2/(2t)`;
- nothing hit, or a surface with no discontinuity near: ``B_FAR``.

Units matter: :math:`D` is of order 1 inside the lobe, and a :math:`B` in
the same units lets the weights tell a silhouette from a surface seen at a
glancing angle, which is not near a discontinuity.

The weights blow up at a boundary, so there :math:`\mathcal{V}` takes the
boundary's velocity. Its divergence is the analytic derivative of the ratio
in :math:`\omega` plus the term of the density the :math:`\omega_i` are
drawn from, which moves with :math:`\omega` (``sampling_density_term``:
score :math:`\nabla_\omega \log p(\omega_i|\omega) = \kappa\,\omega_{i,\perp}`
with leave-one-out baselines). Without it the divergence is not that of
:math:`E[\mathcal{V}]`, and with weights sharp enough to find boundaries the
film's derivative loses part of the silhouette's. In the primal pass the
warp is the identity: only derivatives change, and the image is
``pbdr_interior``'s.

Camera rays: the warp moves a sample's image position, so the film is
splatted at the warped (attached) position with the Jacobian as weight, as
in Mitsuba 3.4's ``prb_reparam``; this needs a smooth pixel filter
(``gaussian``), a box filter is refused.

Where the warp applies: camera rays (fixed origin), BSDF-sampled rays at
every bounce up to ``max_depth`` (the origin fixed, as in
``pbdr_interior``'s replay: the next vertex is the hit of a fixed ray) and
emitter-sampled shadow rays (solid-angle form, the origin moving with the
shading point, so shadow edges move with occluders *and* receivers). A
shading point that slides along a warped ray onto an ``sdfgrid`` turns its
shading frame with it (Mitsuba's ``sdfgrid`` normal has no derivative in
the point). The path tracer is ``pbdr_interior``'s; this class fills its
hooks (``warp_key``, ``warp_ray``, ``attach_interaction``, ``warp_terms``,
``emitter_sample_weight``).

Bias and variance
-----------------
With finitely many auxiliary rays :math:`\mathcal{V}` is a ratio estimate,
but the derivative does not need it to be any particular field: only
continuous, with the boundaries' velocity on them, and with the divergence
of its expectation, which the density term gives. What is left is how well
the weights find a boundary from finitely many rays: shadow rays miss
some, a bias that shrinks as ``reparam_rays`` grows. More rays: less of
that and less variance, proportionally more time. Larger :math:`\kappa`
keeps the warp local (less smearing of the silhouette derivative into
neighbouring pixels, more variance); larger :math:`\gamma` makes the
weights sharper at boundaries (more variance). Antithetic pairs (:math:`\omega_i` mirrored
about :math:`\omega`) cancel first-order noise, but the mirrored ray moves
with :math:`\omega`, so the density term does not apply to them: with
``reparam_antithetic`` the estimator is biased (off by default).

Limits: a discontinuity seen from a *moving* shading point through a
BSDF-sampled ray moves only with the geometry in this estimator (not with
the shading point); the camera needs a smooth pixel filter; where a moving
silhouette crosses a static edge (a corner) the harmonic average cannot
follow both and the derivative there is biased; only meshes and
``sdfgrid`` shapes have boundary tests (other shapes count as surfaces
with no discontinuity near).

Plugin parameters
-----------------
- ``max_depth``, ``rr_depth``, ``hide_emitters``: as ``pbdr_interior``.
- ``reparam_rays`` (int, default 16): auxiliary rays per warped direction.
- ``reparam_kappa`` (float, default 1e5): vMF concentration :math:`\kappa` of
  camera rays (about a sixth of a pixel at 32x32).
- ``reparam_kappa_secondary`` (float, default 1e4): :math:`\kappa` of shadow
  and BSDF rays: a wider lobe spreads a shadow edge's derivative over more
  samples (less variance), a narrower one leaves the edge to a handful of
  samples per pixel (more variance).
- ``reparam_exp`` (float, default 3): weight exponent :math:`\gamma`.
- ``reparam_antithetic`` (bool, default false): mirrored pairs of rays
  (less noise, biased; see above).
- ``reparam_emitter`` (bool, default true): warp emitter-sampled shadow rays.
- ``reparam_max_depth`` (int, default -1): warp rays to vertices of depth
  below this (0: camera rays only; -1: all).

``reparam_antithetic``, ``reparam_emitter`` and ``reparam_max_depth`` are
diagnostic switches (to measure one part of the warp alone).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import drjit as dr
import mitsuba as mi

from mitsuba.ad.integrators.common import RBIntegrator

from pbdr.integrators.interior import InteriorIntegrator, next_uniform, path_stream
from pbdr.geometry.face_edges import FaceEdgeTable
from pbdr.geometry.sdf_field import SDFField

# Salts that give camera/BSDF rays and shadow rays their own auxiliary streams.
SALT_RAY, SALT_EMITTER = 0x9E3779B9, 0x85EBCA6B
# B of rays with no discontinuity near: large against D ~ 1 inside the lobe.
B_FAR = 1e3


@dataclass(frozen=True)
class WarpSettings:
    rays: int
    kappa: float | mi.Float       # may differ per lane (camera vs. secondary rays)
    exponent: float
    antithetic: bool


@dataclass
class WarpScene:
    """What the warp needs to know about the scene, gathered once per render."""

    scene: mi.Scene
    fields: list[SDFField]          # sdfgrid shapes, attached to grid / to_world
    edges: FaceEdgeTable            # discontinuity edges of every mesh

    @staticmethod
    def of(scene: mi.Scene) -> "WarpScene":
        fields = [SDFField.of(shape) for shape in scene.shapes()
                  if shape.shape_type() == int(mi.ShapeType.SDFGrid)]
        return WarpScene(scene, fields, FaceEdgeTable.of(scene))

    def boundary_test(self, si: mi.SurfaceInteraction3f, o: mi.Point3f, d: mi.Vector3f,
                      hit: mi.Bool, kappa: float | mi.Float) -> mi.Float:
        """B(ω_i): the kernel distance D from ``d`` to the nearest discontinuity
        seen from ``o`` (detached), κ δ²/2 for an angular distance δ, at most
        ``B_FAR`` (misses, faces and surfaces with no discontinuity near)."""
        δ = self.edges.edge_angle(si, o, d, hit)
        for field in self.fields:
            on = hit & (si.shape == mi.ShapePtr(field.shape))
            δ = dr.select(on, field.silhouette_angle(si.p, o, d), δ)
        B = dr.minimum(0.5 * kappa * dr.square(δ), B_FAR)
        return dr.select(hit, B, B_FAR)

    def follow_shape(self, si: mi.SurfaceInteraction3f, active: mi.Bool) -> mi.Point3f:
        """The hit point attached to the shape's motion: Mitsuba's ``FollowShape``
        point (rigid, barycentric) for meshes, the normal motion for ``sdfgrid``."""
        p = si.p
        for field in self.fields:
            on = active & (si.shape == mi.ShapePtr(field.shape))
            p = dr.select(on, field.moved(si.p)[0], p)
        return p

    def attach_to_ray(self, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                      active: mi.Bool) -> mi.SurfaceInteraction3f:
        """Along an attached ray, an ``sdfgrid`` hit point is where the ray meets
        the moving tangent plane (first order in the warp and the shape), and
        its shading frame turns with the normal at that point (Mitsuba's
        ``sdfgrid`` shading normal ignores the motion of the point)."""
        for field in self.fields:
            on = active & si.is_valid() & (si.shape == mi.ShapePtr(field.shape))
            x, g = field.moved(si.p)
            n = dr.normalize(g)
            t = dr.dot(x - ray.o, n) / dr.dot(ray.d, n)
            si.p = dr.replace_grad(si.p, dr.select(on, ray(t), si.p))
            si.sh_frame = turned_frame(si.sh_frame, field.shading_normal(si.p), on)
            si.wi = dr.select(on, si.to_local(-ray.d), si.wi)
        return si


def turned_frame(frame: mi.Frame3f, n: mi.Normal3f, active: mi.Bool) -> mi.Frame3f:
    """``frame`` (detached primal) turned to first order so that its normal
    follows the attached unit normal ``n`` (same primal): s and t lose
    their components along the change of n, and the frame stays orthonormal."""
    n0, s0, t0 = dr.detach(frame.n), dr.detach(frame.s), dr.detach(frame.t)
    δn = dr.select(active, n - dr.detach(n), 0.0)
    return mi.Frame3f(dr.select(active, s0 - dr.dot(s0, δn) * n0, frame.s),
                      dr.select(active, t0 - dr.dot(t0, δn) * n0, frame.t),
                      dr.select(active, n0 + δn, frame.n))


def harmonic_weight(sample: mi.Point2f, local: mi.Vector3f, frame: mi.Frame3f, B: mi.Float,
                    s: WarpSettings) -> tuple[mi.Float, mi.Vector3f]:
    """w_i and its tangential gradient in ω (both detached)."""
    # 1/p_vMF up to a constant, e^{κ(1-cos θ)}, exact in float from the sample
    # (the inverse of square_to_von_mises_fisher's map for sample.y).
    inv_p = dr.rcp(dr.fma(sample.y, dr.exp(-2.0 * s.kappa), 1.0 - sample.y))
    denom = inv_p - 1.0 + B
    r = dr.select(denom > 1e-4, dr.rcp(denom), 0.0)
    w = dr.power(r, s.exponent) * inv_p
    # ∂w/∂ω: only D depends on ω; ∂D/∂ω = -κ e^{κ(1-cos θ)} ω_i (tangential part).
    scale = dr.clip(inv_p * w * r * s.kappa * s.exponent, -1e10, 1e10)
    return w, scale * frame.to_world(mi.Vector3f(local.x, local.y, 0.0))


def warp_direction(ws: WarpScene, o: mi.Point3f, o_trace: mi.Point3f, d: mi.Vector3f,
                   key: mi.UInt32, salt: int, s: WarpSettings, active: mi.Bool
                   ) -> tuple[mi.Vector3f, mi.Float]:
    """Warp the detached direction ``d`` leaving ``o``: (attached ω, attached det).

    ``o`` may be attached (its motion then moves what it sees); auxiliary rays
    are traced from the detached ``o_trace``. Primal values: ``d``
    and 1; their derivatives are 𝒱(d) and ∇·𝒱(d).
    """
    d = dr.detach(d)
    frame = mi.Frame3f(d)
    rng = mi.PCG32(dr.width(key), mi.UInt64(key), mi.UInt64(salt))
    Z, dZ = mi.Float(0.0), mi.Vector3f(0.0)
    with dr.resume_grad():
        A, div_lhs = mi.Vector3f(0.0), mi.Float(0.0)
    sample = mi.Point2f(0.0)
    rays = []             # (w_i, ∇_ω log p(ω_i|ω), V_i), for the sampling-density term
    for i in range(s.rays):
        mirrored = s.antithetic and i % 2 == 1
        if not mirrored:
            sample = mi.Point2f(rng.next_float32(), rng.next_float32())
        local = mi.warp.square_to_von_mises_fisher(sample, s.kappa)
        if mirrored:
            local = mi.Vector3f(-local.x, -local.y, local.z)
        ω_i = frame.to_world(local)
        aux = mi.Ray3f(o_trace, ω_i)
        with dr.suspend_grad():
            pi = ws.scene.ray_intersect_preliminary(aux, coherent=False, reorder=False, active=active)
            hit = active & pi.is_valid()
        with dr.resume_grad():
            si = pi.compute_surface_interaction(aux, mi.RayFlags.All | mi.RayFlags.FollowShape, hit)
            V_i = dr.select(hit, dr.normalize(ws.follow_shape(si, hit) - o), ω_i)
        with dr.suspend_grad():
            B = ws.boundary_test(dr.detach(si), o_trace, ω_i, hit, s.kappa)
            w, dw = harmonic_weight(sample, local, frame, B, s)
            Z += dr.select(active, w, 0.0)
            dZ += dr.select(active, dw, 0.0)
        with dr.resume_grad():
            A += dr.select(active, w, 0.0) * V_i
            div_lhs += dr.dot(dr.select(active, dw, 0.0), V_i)
        if not s.antithetic:
            score = s.kappa * frame.to_world(mi.Vector3f(local.x, local.y, 0.0))
            rays.append((dr.select(active, w, 0.0), score, V_i))
    with dr.resume_grad():
        inv_Z = dr.rcp(dr.maximum(Z, 1e-8))
        V = A * inv_Z
        div = (div_lhs - dr.dot(V, dZ)) * inv_Z
        div += sampling_density_term(rays, inv_Z)
        ω = dr.select(active, dr.normalize(d + V - dr.detach(V)), d)
        det = dr.select(active, 1.0 + div - dr.detach(div), 1.0)
    return ω, det


def sampling_density_term(rays: list[tuple[mi.Float, mi.Vector3f, mi.Vector3f]],
                          inv_Z: mi.Float) -> mi.Float:
    """The part of ∇·E[𝒱] that the derivative at fixed ω_i misses: the ω_i
    are drawn around ω, so their density p(ω_i|ω) moves with it. Its score
    s_i = ∇_ω log p = κ (ω_i tangential), with leave-one-out baselines 𝒱₋ᵢ
    (independent of ω_i), together with the derivative of 1/p inside w_i:

        Σ_i (w_i/Z)² s_i · (V_i - 𝒱₋ᵢ),   𝒱₋ᵢ = Σ_{j≠i} w_j V_j / Σ_{j≠i} w_j.

    𝒱₋ᵢ from prefix and suffix sums: Z - w_i would cancel catastrophically
    when one ray carries almost all the weight, as it does at a boundary.
    """
    n = len(rays)
    if n < 2:
        return mi.Float(0.0)
    pre_w, pre_A = [mi.Float(0.0)], [mi.Vector3f(0.0)]
    for w, _, V_i in rays[:-1]:
        pre_w.append(pre_w[-1] + w)
        pre_A.append(pre_A[-1] + w * V_i)
    suf_w, suf_A = [mi.Float(0.0)], [mi.Vector3f(0.0)]
    for w, _, V_i in reversed(rays[1:]):
        suf_w.append(suf_w[-1] + w)
        suf_A.append(suf_A[-1] + w * V_i)
    term = mi.Float(0.0)
    for i, (w, score, V_i) in enumerate(rays):
        Z_others = pre_w[i] + suf_w[n - 1 - i]
        V_others = (pre_A[i] + suf_A[n - 1 - i]) * dr.rcp(Z_others)
        c = dr.square(w * inv_Z)
        term += dr.select(Z_others > 0, c * dr.dot(score, V_i - V_others), 0.0)
    return term


class ReparamIntegrator(InteriorIntegrator):
    __doc__ = __doc__
    plugin_name = "pbdr_reparam"
    boundary_terms = True
    warps_directions = True

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        rays = int(props.get("reparam_rays", 16))
        kappa = float(props.get("reparam_kappa", 1e5))
        kappa_secondary = float(props.get("reparam_kappa_secondary", 1e4))
        exponent = float(props.get("reparam_exp", 3.0))
        antithetic = bool(props.get("reparam_antithetic", False))
        self.warp_emitter = bool(props.get("reparam_emitter", True))
        self.reparam_max_depth = int(props.get("reparam_max_depth", -1))
        if rays < 1 or (antithetic and rays % 2):
            raise ValueError(f"reparam_rays must be >= 1 (even with antithetic sampling), got {rays}")
        if not (kappa > 0 and kappa_secondary > 0 and exponent > 0):
            raise ValueError("reparam_kappa, reparam_kappa_secondary and reparam_exp must be positive")
        self.settings = WarpSettings(rays, kappa, exponent, antithetic)
        self.settings_secondary = WarpSettings(rays, kappa_secondary, exponent, antithetic)
        self._ws: WarpScene | None = None

    # ---- camera rays: the image position moves with the warp ----
    def _prepare(self, scene: mi.Scene, sensor: int | mi.Sensor) -> mi.Sensor:
        sensor = scene.sensors()[sensor] if isinstance(sensor, int) else sensor
        if sensor.film().rfilter().is_box_filter():
            raise ValueError("pbdr_reparam needs a smooth reconstruction filter (e.g. <rfilter "
                             "type=\"gaussian\"/>): a warped camera ray moves its image position, "
                             "and a box filter has no derivative there")
        self._ws = WarpScene.of(scene)
        return sensor

    def camera_image(self, scene: mi.Scene, sensor: mi.Sensor, seed: mi.UInt32,
                     spp: int) -> mi.TensorXf:
        """The image splatted at warped (attached) image positions with the
        camera ray's Jacobian as weight (Mitsuba 3.4's reparameterized
        splatting): its derivative is the camera-ray part of the warp,
        f·∇·𝒱 and the filter's ∇W·𝒱, normalized like the film does."""
        film = sensor.film()
        with dr.suspend_grad():
            sampler, spp = self.prepare(sensor, seed, spp, self.aov_names())
            ray, weight, pos = self.sample_rays(scene, sensor, sampler)
            L, valid, _, _ = self.sample(mode=dr.ADMode.Primal, scene=scene, sampler=sampler.clone(),
                                         ray=ray, depth=mi.UInt32(0), δL=None, δaovs=None,
                                         state_in=None, active=mi.Bool(True))
            # the key of the first bounce's warp in sample(): its first number
            key = self.warp_key(next_uniform(*path_stream(sampler))[0])
            ray = mi.Ray3f(ray)
        with dr.resume_grad():
            d, det = warp_direction(self._ws, ray.o, ray.o, ray.d, key, SALT_RAY, self.settings,
                                    mi.Bool(True))
            it = dr.zeros(mi.Interaction3f)
            it.p = ray.o + d
            ds, _ = sensor.sample_direction(it, mi.Point2f(0.5))
            pos = dr.replace_grad(pos, ds.uv + mi.Vector2f(film.crop_offset()))
            block = film.create_block()
            block.set_coalesce(block.coalesce() and spp >= 4)
            RBIntegrator._splat_to_block(block, film, pos, value=L * weight * det, weight=det,
                                 alpha=dr.select(valid, mi.Float(1), mi.Float(0)), aovs=[],
                                 wavelengths=ray.wavelengths)
            film.put_block(block)
            return film.develop()

    def render_forward(self, scene: mi.Scene, params: Any, sensor: int | mi.Sensor = 0,
                       seed: mi.UInt32 = 0, spp: int = 0) -> mi.TensorXf:
        sensor = self._prepare(scene, sensor)
        image = super().render_forward(scene, params, sensor, seed, spp)
        dr.eval(image)
        camera = self.camera_image(scene, sensor, seed, spp)
        with dr.resume_grad():   # zero, not an error, when no geometry moves (materials, lights)
            dr.forward_to(camera, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
        return image + dr.grad(camera)

    def render_backward(self, scene: mi.Scene, params: Any, grad_in: mi.TensorXf,
                        sensor: int | mi.Sensor = 0, seed: mi.UInt32 = 0, spp: int = 0) -> None:
        sensor = self._prepare(scene, sensor)
        super().render_backward(scene, params, grad_in, sensor, seed, spp)
        camera = self.camera_image(scene, sensor, seed, spp)
        with dr.resume_grad():
            dr.backward_from(camera * grad_in, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
        dr.eval()

    # ---- hooks of pbdr_interior's path tracer ----
    def warp_key(self, u: mi.Float) -> mi.UInt32:
        return mi.UInt32(u * 4294967040.0)

    def warp_ray(self, scene: mi.Scene, key: mi.UInt32, ray: mi.Ray3f, depth: mi.UInt32,
                 active: mi.Bool) -> tuple[mi.Ray3f, mi.Float]:
        ray = mi.Ray3f(dr.detach(ray))
        if self.reparam_max_depth >= 0:
            active = active & (depth < self.reparam_max_depth)
        s = self.settings
        kappa = dr.select(depth == 0, s.kappa, self.settings_secondary.kappa)
        d, det = warp_direction(self._ws, ray.o, ray.o, ray.d, key, SALT_RAY,
                                WarpSettings(s.rays, kappa, s.exponent, s.antithetic), active)
        with dr.resume_grad():
            ray_ad = mi.Ray3f(ray)
            ray_ad.d = d
        return ray_ad, det

    def attach_interaction(self, si: mi.SurfaceInteraction3f, ray: mi.Ray3f,
                           active: mi.Bool) -> mi.SurfaceInteraction3f:
        return self._ws.attach_to_ray(si, ray, active)

    def warp_terms(self, L_in: mi.Spectrum, det: mi.Float, ray: mi.Ray3f,
                   si_prev: mi.SurfaceInteraction3f, depth: mi.UInt32,
                   active: mi.Bool) -> mi.Spectrum:
        # The previous vertex's BSDF sees the warped outgoing direction. The
        # camera ray's Jacobian goes to the film instead (camera_image).
        si_prev = dr.detach(si_prev)
        has_prev = active & (depth >= 1)
        f_prev = si_prev.bsdf().eval(mi.BSDFContext(), si_prev, si_prev.to_local(ray.d), has_prev)
        det = dr.select(has_prev, det, 1.0)
        return dr.detach(L_in) * det * dr.relative_grad(f_prev)

    def emitter_sample_weight(self, scene: mi.Scene, si: mi.SurfaceInteraction3f,
                              ds: mi.DirectionSample3f, em_weight: mi.Spectrum,
                              active: mi.Bool, key: mi.UInt32 | None = None
                              ) -> tuple[mi.DirectionSample3f, mi.Spectrum]:
        """Shadow ray in solid-angle form: the direction ω' to the emitter
        sample is fixed, warped so that shadow edges move with occluders and
        with the (attached) shading point; the pdf stays detached."""
        if not self.warp_emitter or key is None:
            return super().emitter_sample_weight(scene, si, ds, em_weight, active, key)
        o_trace = dr.detach(si.spawn_ray(ds.d).o)
        ω, det = warp_direction(self._ws, si.p, o_trace, ds.d, key, SALT_EMITTER,
                                self.settings_secondary,
                                active)
        ds.d = ω
        value = scene.eval_emitter_direction(si, ds, active)
        inv_pdf = dr.select(ds.pdf != 0, dr.rcp(dr.detach(ds.pdf)), 0.0)
        visible = dr.max(mi.unpolarized_spectrum(dr.detach(em_weight))) > 0   # shadow ray of the primal
        em_weight = dr.replace_grad(em_weight, dr.select(visible, value * inv_pdf, 0.0))
        return ds, em_weight * det

    def to_string(self) -> str:
        s = self.settings
        return (f"ReparamIntegrator[max_depth={self.max_depth}, reparam_rays={s.rays}, "
                f"reparam_kappa={s.kappa:g}, reparam_exp={s.exponent:g}, "
                f"reparam_antithetic={s.antithetic}, reparam_emitter={self.warp_emitter}]")
