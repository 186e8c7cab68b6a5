r"""How the optical depth of a segment changes when its ends move.

Path replay holds the transmittance :math:`T = e^{-\tau}` of a segment
fixed unless told otherwise. When an end of the segment lies on a moving
mesh, :math:`\tau(x, y) = \int_x^y \sigma_t` changes with it. Along the
line :math:`x + s\hat d`, :math:`\hat d = (y - x)/r`, with piecewise
constant extinction :math:`\sigma_0, \ldots, \sigma_m` between the
crossings :math:`c_1 \ldots c_m` of medium boundaries (planes with normal
:math:`n_c` through :math:`c`, at distance
:math:`s_c = n_c\cdot(c - x) / n_c\cdot\hat d`),

.. math::

    \tau = \sigma_m\, r + \sum_c \Delta\sigma_c\, s_c, \qquad
    \Delta\sigma_c = \sigma_{c-1} - \sigma_c,

so :math:`\dot\tau = G_x\cdot\dot x + G_y\cdot\dot y` with

.. math::

    G_x = -\sigma_m \hat d + \sum_c \frac{\Delta\sigma_c}{n_c\cdot\hat d}
          \Big(-n_c + \frac{s_c}{r}\big(n_c - \hat d\,(n_c\cdot\hat d)\big)\Big),\quad
    G_y = \sigma_m \hat d - \sum_c \frac{\Delta\sigma_c\, s_c}{r\, n_c\cdot\hat d}
          \big(n_c - \hat d\,(n_c\cdot\hat d)\big).

The crossings move as the line pivots (a point inside a medium box, a
light outside it). :func:`optical_depth_gradients` walks the segment once
(a symbolic loop, no AD) and returns the detached :math:`G_x, G_y` per
channel; :func:`optical_depth_change` turns them into
:math:`\dot\tau` of attached end points (value 0). A segment towards an
infinitely distant emitter keeps its direction (:math:`r = \infty`: the
terms in :math:`s_c / r` vanish and the last piece lies outside every
medium).

Homogeneous media are exact. In a heterogeneous medium :math:`\sigma` is
evaluated at the crossings and at the ends, so the motion of the ends
along the line is exact (:math:`\dot\tau = \sigma_t(y)\,\hat d\cdot\dot y
- \sigma_t(x)\,\hat d\cdot\dot x`), and the change of density along a
pivoting line (:math:`\int \nabla\sigma_t\cdot\dot p\, ds`) is left out.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from pbdr.geometry.rays import pass_through


def sigma_t_at(medium: mi.MediumPtr, p: mi.Point3f, active: mi.Bool) -> mi.Spectrum:
    """σ_t of ``medium`` at ``p`` (detached; 0 outside media)."""
    with dr.suspend_grad():
        active = active & (medium != None)   # noqa: E711 (Dr.Jit pointer test)
        mei = dr.zeros(mi.MediumInteraction3f)
        mei.p = mi.Point3f(p)
        mei.medium = medium
        _, _, σ_t = medium.get_scattering_coefficients(mei, active)
        return dr.select(active, mi.Spectrum(σ_t), 0.0)


def _channels(value: mi.Spectrum) -> list[mi.Float]:
    return [value[k] for k in range(dr.size_v(mi.Spectrum))]


def _is_crossing(si: mi.SurfaceInteraction3f, ray: mi.Ray3f) -> mi.Bool:
    flags = si.bsdf(ray).flags()
    return si.is_valid() & mi.has_flag(flags, mi.BSDFFlags.Null) & ~mi.has_flag(flags, mi.BSDFFlags.Reflection)


@dr.syntax
def optical_depth_gradients(scene: mi.Scene, x: mi.Point3f, ray: mi.Ray3f, r: mi.Float,
                            medium: mi.MediumPtr, active: mi.Bool
                            ) -> tuple[list[mi.Vector3f], list[mi.Vector3f]]:
    """(G_x, G_y), one vector per channel, of the segment from ``x`` along
    ``ray`` (``ray.d`` = d̂, ``ray.o`` near ``x``, ``ray.maxt`` where it ends
    short of ``y``) of length ``r`` (inf: towards an infinitely distant
    point), starting in ``medium``. Crossed boundaries are null surfaces; an
    opaque surface before the end stops the walk there (the segment is
    then occluded and its transmittance 0)."""
    n_ch = dr.size_v(mi.Spectrum)
    with dr.suspend_grad():
        x = mi.Point3f(dr.detach(x))
        d = mi.Vector3f(dr.detach(ray.d))
        ray = mi.Ray3f(dr.detach(ray))
        medium_x = mi.MediumPtr(medium)
        medium = mi.MediumPtr(medium)
        inv_r = dr.select(dr.isinf(r), 0.0, dr.rcp(r))
        gx = [mi.Vector3f(0.0) for _ in range(n_ch)]
        gy = [mi.Vector3f(0.0) for _ in range(n_ch)]
        σ_0 = [mi.Float(0.0) for _ in range(n_ch)]   # σ of the first piece, at its first crossing
        no_crossing = mi.Bool(True)
        walking = mi.Bool(active)
        while walking:
            si = scene.ray_intersect(ray, mi.RayFlags.All, False, walking)
            walking &= _is_crossing(si, ray)
            σ_before = _channels(sigma_t_at(medium, si.p, walking))
            transition = walking & si.is_medium_transition()
            medium[transition] = si.target_medium(d)
            σ_after = _channels(sigma_t_at(medium, si.p, walking))
            n = mi.Vector3f(si.n)
            nd = dr.dot(n, d)
            grazing = nd == 0
            inv_nd = dr.select(grazing, 0.0, dr.rcp(dr.select(grazing, 1.0, nd)))
            s = dr.dot(si.p - x, d)
            pivot = (n - d * nd) * (s * inv_r)
            vx = (pivot - n) * inv_nd
            vy = -pivot * inv_nd
            first = walking & no_crossing
            no_crossing &= ~walking
            for k in range(n_ch):
                σ_0[k] = dr.select(first, σ_before[k], σ_0[k])
                Δσ = dr.select(walking, σ_before[k] - σ_after[k], 0.0)
                gx[k] += Δσ * vx
                gy[k] += Δσ * vy
            ray[walking] = pass_through(ray, si)
            ray.maxt[walking] = ray.maxt - si.t
        # The last piece: σ_m at the far end (0 when it leaves every medium towards infinity).
        end = x + d * dr.select(dr.isinf(r), 0.0, r)
        σ_m = _channels(sigma_t_at(medium, end, active & ~dr.isinf(r)))
        # A heterogeneous first piece: its density at x, not at its far end, meets x's motion.
        σ_x = _channels(sigma_t_at(medium_x, x, active))
        for k in range(n_ch):
            σ_first = dr.select(no_crossing, σ_m[k], σ_0[k])
            gx[k] -= σ_m[k] * d + (σ_x[k] - σ_first) * d
            gy[k] += σ_m[k] * d
    return gx, gy


def optical_depth_change(gx: list[mi.Vector3f], gy: list[mi.Vector3f], x: mi.Point3f | None,
                         y: mi.Point3f | None) -> mi.Spectrum:
    """τ̇ of the segment as attached ends ``x`` and ``y`` move (either may be
    None: held fixed): a spectrum of value 0 whose derivative is
    G_x·ẋ + G_y·ẏ."""
    comps = []
    for k in range(len(gx)):
        c = mi.Float(0.0)
        if x is not None:
            c += dr.dot(gx[k], x - dr.detach(x))
        if y is not None:
            c += dr.dot(gy[k], y - dr.detach(y))
        comps.append(c)
    return mi.Spectrum(*comps) if len(comps) > 1 else mi.Spectrum(comps[0])
