"""Change-of-measure factors of path replay, differentiable in a moving shading point.

The interior term of a moving surface point :math:`x` keeps the *next*
vertex :math:`y` fixed (area measure, or volume measure for a medium
vertex), so the factors that carry :math:`x`'s motion are the direction
:math:`(y - x)/\\lVert y - x\\rVert` and the Jacobian from solid angle at
:math:`x` to area (or volume) at :math:`y`.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi


def area_jacobian(x: mi.Point3f, y: mi.Point3f, n_y: mi.Normal3f, active: mi.Bool) -> mi.Float:
    """|cos θ_y| / |x - y|²: solid angle at x to area at y (differentiable in x)."""
    d = y - x
    dist2 = dr.squared_norm(d)
    cos_y = dr.abs_dot(n_y, d) * dr.rsqrt(dist2)
    return dr.select(active & (dist2 > 0), cos_y / dist2, 0.0)


def volume_jacobian(x: mi.Point3f, y: mi.Point3f, active: mi.Bool) -> mi.Float:
    """1 / |x - y|²: solid angle and distance at x to volume at y."""
    dist2 = dr.squared_norm(y - x)
    return dr.select(active & (dist2 > 0), dr.rcp(dist2), 0.0)


def attached_emitter_sample(scene: mi.Scene, si: mi.SurfaceInteraction3f, ds: mi.DirectionSample3f,
                            em_weight: mi.Spectrum, active: mi.Bool
                            ) -> tuple[mi.DirectionSample3f, mi.Spectrum]:
    """Re-attach an emitter sample drawn without AD.

    The sample point stays where it was drawn (its random numbers are
    fixed), but its radiance, the direction from a moving shading point
    and the area-to-solid-angle Jacobian are recomputed with AD so that
    emitters and shading points can be differentiated.
    """
    is_surface = mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Surface)
    is_infinite = mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Infinite)
    textured = active & is_surface & mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.SpatiallyVarying)
    # A textured area light needs the UV of the (possibly moving) sample point.
    ray_em = si.spawn_ray_to(ds.p)
    ray_em.o = dr.fma(ray_em.d, ray_em.maxt, ray_em.o)  # start next to the emitter
    ray_em.maxt = dr.largest(ray_em.maxt)
    si_em = scene.ray_intersect(ray_em, textured)
    ds_ad = dr.select(textured, mi.DirectionSample3f(scene, si_em, si), dr.zeros(mi.DirectionSample3f))
    ds_ad.d = dr.select(textured, ds_ad.d, dr.normalize(ds.p - si.p))
    ds_ad.d = dr.select(is_infinite, ds.d, ds_ad.d)
    ds = dr.replace_grad(ds, ds_ad)

    value = scene.eval_emitter_direction(si, ds, active)
    inv_pdf = dr.select(ds.pdf != 0, dr.rcp(ds.pdf), 0.0)
    em_weight = dr.replace_grad(em_weight, value * dr.detach(inv_pdf))
    J = area_jacobian(si.p, dr.detach(ds.p), dr.detach(ds.n), active & is_surface)
    return ds, em_weight * dr.relative_grad(J)
