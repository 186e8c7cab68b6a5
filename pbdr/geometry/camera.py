"""A perspective camera as a projection to pixel coordinates, and the
clipping of 3D segments to its near plane and image (primary boundary
terms sample points on projected segments)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import drjit as dr
import mitsuba as mi
import numpy as np


@dataclass
class Camera:
    """Perspective projection from world space to pixel coordinates of the crop."""

    to_sample: np.ndarray   # 4 x 4, world -> [0,1]^2 sample space (homogeneous)
    origin: np.ndarray      # 3
    near: float
    size: np.ndarray        # (W, H) of the crop
    forward: np.ndarray     # 3, the viewing direction

    @staticmethod
    def of(sensor: mi.Sensor) -> "Camera":
        # The sensor's own transforms: traversing its parameters costs more
        # than the rest of a small primary-edge pass.
        if sensor.class_name() != "PerspectiveCamera":
            raise NotImplementedError("primary edges need a perspective sensor")
        to_world, projection = sensor.world_transform().matrix, sensor.projection_transform().matrix
        size = np.array(sensor.film().crop_size(), dtype=np.float64)
        # Dr.Jit variables are immutable and the cache holds them, so their
        # indices cannot be reused: the same indices mean the same camera.
        key = (_indices(to_world), _indices(projection), float(sensor.near_clip()), tuple(size))
        cached = _CAMERAS.get(id(sensor))
        if cached is not None and cached[0] == key:
            return cached[2]
        to_world_np = _matrix(to_world)
        m = _matrix(projection) @ np.linalg.inv(to_world_np)
        forward = to_world_np[:3, 2]
        camera = Camera(m, to_world_np[:3, 3].copy(), key[2], size, forward / np.linalg.norm(forward))
        _CAMERAS[id(sensor)] = (key, (to_world, projection), camera)
        return camera

    def ray_towards(self, target: mi.Point3f) -> mi.Ray3f:
        """The camera ray through a world point, started at the near plane as the sensor does."""
        o = mi.ScalarPoint3f(self.origin)
        d = dr.normalize(target - o)
        near_t = self.near / dr.dot(d, mi.ScalarVector3f(self.forward))
        return mi.Ray3f(o + d * near_t, d)

    def project(self, p: mi.Point3f) -> mi.Point2f:
        """Pixel coordinates of world points (differentiable)."""
        m = self.to_sample
        row = [mi.Float(float(m[i, 0])) * p.x + float(m[i, 1]) * p.y + float(m[i, 2]) * p.z + float(m[i, 3])
               for i in (0, 1, 3)]
        return mi.Point2f(row[0] / row[2] * float(self.size[0]), row[1] / row[2] * float(self.size[1]))

    def project_jacobian(self, p: mi.Point3f) -> tuple[mi.Vector3f, mi.Vector3f]:
        """The rows ∂x/∂p and ∂y/∂p of the projection at world points."""
        m = self.to_sample
        rows = [mi.ScalarVector3f(*(float(v) for v in m[i, :3])) for i in (0, 1, 3)]
        hom = [dr.dot(r, p) + float(m[i, 3]) for r, i in zip(rows, (0, 1, 3))]
        inv_w2 = dr.rcp(dr.square(hom[2]))
        return tuple((r * hom[2] - hom[k] * rows[2]) * (inv_w2 * float(self.size[k]))
                     for k, r in enumerate(rows[:2]))


_CAMERAS: dict[int, tuple[tuple, tuple, Camera]] = {}


def _indices(m: mi.Matrix4f) -> tuple[int, ...]:
    return tuple(m[i][j].index for i in range(4) for j in range(4))


def _matrix(m: mi.Matrix4f) -> np.ndarray:
    """A width-1 Dr.Jit matrix as NumPy, entry by entry (one kernel for all when not evaluated)."""
    entries = [m[i][j] for i in range(4) for j in range(4)]
    dr.eval(*entries)
    return np.array([e[0] for e in entries], dtype=np.float64).reshape(4, 4)


def clip_edges(cam: Camera, p0: np.ndarray, p1: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """Clip 3D segments to the near plane and their projections to the image (+ margin).

    Returns per edge the 3D parameter range [s_a, s_b], camera depths at those
    ends, screen end points, the screen parameter range [t_a, t_b] and the
    clipped projected length (0 for edges entirely outside).
    """
    m = cam.to_sample
    h0 = p0 @ m[:, :3].T + m[:, 3]
    h1 = p1 @ m[:, :3].T + m[:, 3]
    w0, w1 = h0[:, 3], h1[:, 3]
    near = cam.near * (1 + 1e-4)
    # Near plane: w(s) = w0 + s (w1 - w0) >= near.
    sa, sb = np.zeros(len(p0)), np.ones(len(p0))
    dw = w1 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        s_cross = (near - w0) / dw
    sa = np.where((w0 < near) & (dw > 0), s_cross, sa)
    sb = np.where((w1 < near) & (dw < 0), s_cross, sb)
    ok = ~((w0 < near) & (w1 < near))
    ha, hb = h0 + sa[:, None] * (h1 - h0), h0 + sb[:, None] * (h1 - h0)
    wa, wb = ha[:, 3], hb[:, 3]
    wa_safe, wb_safe = np.where(ok, wa, 1.0), np.where(ok, wb, 1.0)
    qa = ha[:, :2] / wa_safe[:, None] * cam.size
    qb = hb[:, :2] / wb_safe[:, None] * cam.size
    # Liang-Barsky against [-margin, W + margin] x [-margin, H + margin].
    ta, tb = np.zeros(len(p0)), np.ones(len(p0))
    d = qb - qa
    for axis in (0, 1):
        lo, hi = -margin, cam.size[axis] + margin
        for pk, qk in ((-d[:, axis], qa[:, axis] - lo), (d[:, axis], hi - qa[:, axis])):
            parallel = pk == 0
            ok &= ~(parallel & (qk < 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = qk / pk
            ta = np.where(~parallel & (pk < 0), np.maximum(ta, r), ta)
            tb = np.where(~parallel & (pk > 0), np.minimum(tb, r), tb)
    ok &= tb > ta
    length = np.where(ok, np.linalg.norm(d, axis=1) * (tb - ta), 0.0)
    return {"sa": sa, "sb": sb, "wa": wa_safe, "wb": wb_safe, "qa": qa, "qb": qb,
            "ta": ta, "tb": tb, "length": np.nan_to_num(length)}


def gather_columns(columns: Sequence[np.ndarray], idx: mi.UInt32) -> list[mi.Float]:
    """Rows ``idx`` of host columns (equal lengths), uploaded as one table:
    every upload is a task of its own, a few hundred microseconds on 2 cores."""
    table = mi.Float(np.stack(columns, axis=1).astype(np.float32).ravel())
    return [dr.gather(mi.Float, table, idx * len(columns) + k) for k in range(len(columns))]


def clipped_point(clip: dict[str, np.ndarray], idx: mi.UInt32, ξ: mi.Float) -> tuple[mi.Float, mi.Vector2f]:
    """At ``ξ`` uniformly along the clipped projections of segments ``idx``
    (``clip_edges``): the perspective-correct 3D parameter s on each segment
    and the unit screen normal of its projection (detached)."""
    dq = clip["qb"] - clip["qa"]
    with dr.suspend_grad():
        ta, tb, wa, wb, sa, sb, dx, dy = gather_columns(
            (clip["ta"], clip["tb"], clip["wa"], clip["wb"], clip["sa"], clip["sb"], dq[:, 0], dq[:, 1]), idx)
        t = dr.lerp(ta, tb, ξ)
        s = dr.lerp(sa, sb, t * wa / ((1 - t) * wb + t * wa))
        return s, dr.normalize(mi.Vector2f(-dy, dx))
