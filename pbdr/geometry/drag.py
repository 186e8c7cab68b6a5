r"""Dragging path vertices with a moving mesh: a smooth velocity field.

A reparameterization of the path integral may move every vertex with any
velocity that keeps it on its surface; the derivative then gains the
divergence of that velocity (the change of measure). Held fixed, a vertex
next to a moving point has a Jacobian whose derivative grows as
:math:`1/r^3`; dragged, vertices near the moving point move with it.

The *anchor* is the last path vertex on a moving mesh (re-attached from the
ray that hit it, with its weight of the mesh's material motion against
sliding along that ray). A later point :math:`p` moves by
:math:`w(\lVert p - a\rVert)\, P\,\dot a` with :math:`w = 1` up to half the
drag radius and a smooth step to 0 at it (:math:`P`: the projection on a
static surface's tangent plane; none in a medium); its measure changes by
:math:`w'(r)\,(P\hat r)\cdot(P\dot a)`. Used by ``pbdr_volume``
(``integrators/volume_motion.py``).
"""
from __future__ import annotations

from typing import NamedTuple

import drjit as dr
import mitsuba as mi

from pbdr.geometry.moving import attached_interaction


class Anchor(NamedTuple):
    """The last vertex on a moving mesh: where it is (detached) and its motion (value 0)."""

    p: mi.Point3f
    motion: mi.Vector3f
    on: mi.Bool


def anchor_of(scene: mi.Scene, ray: mi.Ray3f, on: mi.Bool, material: mi.Float) -> Anchor:
    """The anchor hit by ``ray``, re-attached as it moved (``material``: its weight
    of the mesh's material motion against sliding along the ray)."""
    a = attached_interaction(scene, scene.ray_intersect(ray, on), ray, on, material).p
    return Anchor(dr.detach(a), dr.select(on, a - dr.detach(a), 0.0), on)


def anchor_weight(anchor: Anchor, p: mi.Point3f, radius: float) -> tuple[mi.Float, mi.Float, mi.Vector3f]:
    """w(|p - a|) (1 up to half the drag radius, a smooth step to 0 at it; 0
    without anchor), dw/dr and the unit vector from the anchor to ``p``."""
    to_p = dr.detach(p) - anchor.p
    r = dr.norm(to_p)
    s = dr.clip((r - 0.5 * radius) / (0.5 * radius), 0.0, 1.0)
    w = dr.select(anchor.on, 1.0 - s * s * (3.0 - 2.0 * s), 0.0)
    dw = dr.select(anchor.on, -6.0 * s * (1.0 - s) / (0.5 * radius), 0.0)
    return w, dw, to_p * dr.select(r > 0, dr.rcp(r), 0.0)


def drag(anchor: Anchor, p: mi.Point3f, n: mi.Vector3f, radius: float) -> tuple[mi.Vector3f, mi.Float]:
    """The displacement (value 0) of a point ``p`` dragged by the anchor, and
    its divergence (value 0): the relative change of the measure at ``p``.
    ``n``: the unit normal of a static surface ``p`` lies on, whose tangent
    plane the drag keeps to; 0 in a medium (no projection)."""
    w, dw, r_hat = anchor_weight(anchor, p, radius)
    v = anchor.motion - n * dr.dot(n, anchor.motion)
    r_hat = r_hat - n * dr.dot(n, r_hat)
    on = anchor.on & (w > 0)
    return dr.select(on, w * v, 0.0), dr.select(on, dw * dr.dot(r_hat, v), 0.0)
