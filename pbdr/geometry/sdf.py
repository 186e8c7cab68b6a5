"""Signed distance grids for Mitsuba's ``sdfgrid`` shape: make, read, write.

Mitsuba's ``sdfgrid`` holds a tensor ``grid[z, y, x]`` of signed distances
(negative inside) sampled at the *corners* of a regular lattice on the unit
cube: sample ``i`` of a grid of ``N`` lies at ``i / (N - 1)`` and the shape
interpolates trilinearly between samples. ``to_world`` maps that cube into
the scene. This module builds such grids on a world-space box:

    u in [0,1]^3  ->  x = lo + s·u,      grid = d(x) / s

with one uniform scale ``s`` (the longest side of the box), so the stored
values stay true distances in the grid's own units and Mitsuba's sphere
tracing takes correct steps. Every maker returns an :class:`SDFGrid` (values
and the matching ``to_world``); ``write`` saves the values as a ``.vol`` file
(``mi.VolumeGrid``) and ``xml_snippet`` gives the ``<shape>`` that uses it.

Primitives: :func:`sphere`, :func:`box`, :func:`torus` (exact distances),
and :func:`from_mesh` (brute-force point-triangle distances, sign from the
generalized winding number, so small, closed, consistently oriented meshes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import PbdrError, one_line

Vec3 = Sequence[float]


@dataclass
class SDFGrid:
    """Signed distances ``values[z, y, x]`` on [0,1]^3 and the map to world space."""

    values: np.ndarray          # (N, N, N) float32, grid units (world distance / scale)
    origin: np.ndarray          # world position of grid corner u = (0, 0, 0)
    scale: float                # world length of the unit cube's side

    @property
    def resolution(self) -> int:
        return int(self.values.shape[0])

    def to_world_matrix(self) -> np.ndarray:
        """4x4 matrix of the ``to_world`` transform (uniform scale, then translate)."""
        m = np.eye(4)
        m[:3, :3] *= self.scale
        m[:3, 3] = self.origin
        return m

    def to_world(self):
        """``mi.ScalarTransform4f`` for ``sdfgrid``'s ``to_world``."""
        import mitsuba as mi
        return mi.ScalarTransform4f().translate(self.origin.tolist()).scale(self.scale)

    def world_values(self) -> np.ndarray:
        """The signed distances in world units."""
        return self.values * self.scale

    def xml_snippet(self, filename: str, shape_id: str = "sdf") -> str:
        ox, oy, oz = (f"{v:.9g}" for v in self.origin)
        return (f'<shape type="sdfgrid" id="{shape_id}">\n'
                f'    <string name="filename" value="{filename}"/>\n'
                f'    <transform name="to_world"><scale value="{self.scale:.9g}"/>'
                f'<translate x="{ox}" y="{oy}" z="{oz}"/></transform>\n'
                f'</shape>')


def lattice(resolution: int, lo: Vec3, hi: Vec3) -> tuple[np.ndarray, np.ndarray, float]:
    """World points (N, N, N, 3) at the grid's corners, in [z, y, x] order; origin and scale.

    The cube covers the box ``[lo, hi]`` (centered on it, side = longest extent).
    """
    if int(resolution) != resolution or resolution < 2:
        raise PbdrError(f"SDF resolution must be an integer >= 2, got {resolution}")
    lo_, hi_ = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if lo_.shape != (3,) or hi_.shape != (3,) or not np.all(np.isfinite(lo_ + hi_)):
        raise PbdrError("SDF bounds must be two finite X,Y,Z points")
    if np.any(hi_ <= lo_):
        raise PbdrError(f"SDF bounds are empty: lo={lo_.tolist()} hi={hi_.tolist()}")
    scale = float(np.max(hi_ - lo_))
    origin = 0.5 * (lo_ + hi_) - 0.5 * scale
    t = np.arange(resolution) / (resolution - 1)
    z, y, x = np.meshgrid(t, t, t, indexing="ij")
    u = np.stack([x, y, z], axis=-1)
    return origin + scale * u, origin, scale


def from_function(distance: Callable[[np.ndarray], np.ndarray], resolution: int,
                  lo: Vec3, hi: Vec3) -> SDFGrid:
    """Sample a world-space signed distance ``distance(points[..., 3])`` on the box."""
    points, origin, scale = lattice(resolution, lo, hi)
    d = np.asarray(distance(points), dtype=np.float64)
    if d.shape != points.shape[:-1] or not np.all(np.isfinite(d)):
        raise PbdrError("SDF function must return one finite distance per point")
    return SDFGrid((d / scale).astype(np.float32), origin, scale)


def auto_bounds(center: Vec3, half_extent: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(center, dtype=np.float64)
    h = float(half_extent) * (1.0 + padding)
    return c - h, c + h


def check_positive(name: str, value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise PbdrError(f"{name} must be a positive number, got {value}")
    return float(value)


def sphere(radius: float, center: Vec3 = (0, 0, 0), resolution: int = 32,
           padding: float = 0.25) -> SDFGrid:
    """|x - c| - r on a cube around the sphere (``padding`` relative margin)."""
    r = check_positive("radius", radius)
    c = np.asarray(center, dtype=np.float64)
    lo, hi = auto_bounds(c, r, padding)
    return from_function(lambda p: np.linalg.norm(p - c, axis=-1) - r, resolution, lo, hi)


def box(half_size: Vec3, center: Vec3 = (0, 0, 0), resolution: int = 32,
        padding: float = 0.25) -> SDFGrid:
    """Exact distance to an axis-aligned box with half extents ``half_size``."""
    b = np.array([check_positive("half size", v) for v in half_size])
    if b.shape != (3,):
        raise PbdrError("box half size must be X,Y,Z")
    c = np.asarray(center, dtype=np.float64)
    lo, hi = auto_bounds(c, float(b.max()), padding)

    def distance(p: np.ndarray) -> np.ndarray:
        q = np.abs(p - c) - b
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(q.max(axis=-1), 0.0)
        return outside + inside
    return from_function(distance, resolution, lo, hi)


def torus(major: float, minor: float, center: Vec3 = (0, 0, 0), resolution: int = 32,
          padding: float = 0.25) -> SDFGrid:
    """Torus in the XZ plane (axis +Y): ring radius ``major``, tube radius ``minor``."""
    R, r = check_positive("major radius", major), check_positive("minor radius", minor)
    if r >= R:
        raise PbdrError(f"torus minor radius ({r}) must be smaller than the major radius ({R})")
    c = np.asarray(center, dtype=np.float64)
    lo, hi = auto_bounds(c, R + r, padding)

    def distance(p: np.ndarray) -> np.ndarray:
        q = p - c
        ring = np.hypot(q[..., 0], q[..., 2]) - R
        return np.hypot(ring, q[..., 1]) - r
    return from_function(distance, resolution, lo, hi)


# ---------------------------------------------------------------------------
# Triangle meshes
# ---------------------------------------------------------------------------

def point_triangle_distance2(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distance from points p (P, 3) to triangles (T, 3) each: (P, T).

    Closest point by projecting on the plane and clamping to the edges
    (Ericson, Real-Time Collision Detection, 5.1.5, by region tests).
    """
    p = p[:, None, :]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.sum(ab * ap, -1), np.sum(ac * ap, -1)
    bp = p - b
    d3, d4 = np.sum(ab * bp, -1), np.sum(ac * bp, -1)
    cp = p - c
    d5, d6 = np.sum(ab * cp, -1), np.sum(ac * cp, -1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        closest = a + ab * v[..., None] + ac * w[..., None]      # inside the face
        t_ab = np.clip(d1 / np.where(d1 - d3 != 0, d1 - d3, 1), 0, 1)
        t_ac = np.clip(d2 / np.where(d2 - d6 != 0, d2 - d6, 1), 0, 1)
        t_bc = np.clip((d4 - d3) / np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) + (d5 - d6), 1), 0, 1)
    e_ab = a + ab * t_ab[..., None]
    e_ac = a + ac * t_ac[..., None]
    e_bc = b + (c - b) * t_bc[..., None]
    region = [
        ((d1 <= 0) & (d2 <= 0), a + 0 * p),
        ((d3 >= 0) & (d4 <= d3), b + 0 * p),
        ((d6 >= 0) & (d5 <= d6), c + 0 * p),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), e_ab),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), e_ac),
        ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), e_bc),
    ]
    for mask, value in reversed(region):      # first matching region wins
        closest = np.where(mask[..., None], value, closest)
    return np.sum((p - closest) ** 2, -1)


def winding_number(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Generalized winding number of points (P, 3) w.r.t. triangles (T, 3) each.

    Sum of signed solid angles / 4π (Van Oosterom & Strackee 1983; Jacobson
    et al. 2013): ~1 inside a closed outward-oriented mesh, ~0 outside.
    """
    ra, rb, rc = a - p[:, None], b - p[:, None], c - p[:, None]
    la, lb, lc = (np.linalg.norm(r, axis=-1) for r in (ra, rb, rc))
    det = np.sum(ra * np.cross(rb, rc), -1)
    den = (la * lb * lc + np.sum(ra * rb, -1) * lc + np.sum(rb * rc, -1) * la
           + np.sum(rc * ra, -1) * lb)
    return np.sum(2 * np.arctan2(det, den), axis=1) / (4 * np.pi)


def mesh_signed_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                         chunk: int = 1 << 22) -> np.ndarray:
    """Signed distance (negative inside) from points (..., 3) to a closed triangle mesh."""
    shape = points.shape[:-1]
    p = points.reshape(-1, 3)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    out = np.empty(len(p))
    step = max(1, chunk // max(len(faces), 1))
    for i in range(0, len(p), step):
        q = p[i:i + step]
        d = np.sqrt(point_triangle_distance2(q, a, b, c).min(axis=1))
        inside = winding_number(q, a, b, c) > 0.5
        out[i:i + step] = np.where(inside, -d, d)
    return out.reshape(shape)


def load_mesh(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and faces (F, 3) of an .obj or .ply file, read by Mitsuba."""
    import mitsuba as mi
    from ..variant import ensure_variant

    ext = os.path.splitext(path)[1].lower()
    if ext not in (".obj", ".ply"):
        raise PbdrError(f"mesh must be an .obj or .ply file, got '{path}'")
    if not os.path.isfile(path):
        raise PbdrError(f"mesh file not found: {path}")
    ensure_variant()
    try:
        mesh = mi.load_dict({"type": ext[1:], "filename": os.path.abspath(path)})
    except Exception as exc:
        raise PbdrError(f"cannot load mesh {path}: {one_line(exc)}") from None
    params = mi.traverse(mesh)
    vertices = np.array(params["vertex_positions"], dtype=np.float64).reshape(-1, 3)
    faces = np.array(params["faces"], dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise PbdrError(f"mesh {path} has no triangles")
    return vertices, faces


def from_mesh(vertices: np.ndarray, faces: np.ndarray, resolution: int = 32,
              padding: float = 0.25) -> SDFGrid:
    """SDF of a closed triangle mesh on a cube around its bounding box.

    Brute force: O(N³·F) point-triangle tests, fine for small grids and
    meshes (32³ points x 1000 triangles takes seconds).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise PbdrError("mesh needs vertices (V, 3) and triangle faces (F, 3)")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    center, half = 0.5 * (lo + hi), 0.5 * float(np.max(hi - lo))
    if half <= 0:
        raise PbdrError("mesh is degenerate (zero extent)")
    blo, bhi = auto_bounds(center, half, padding)
    return from_function(lambda p: mesh_signed_distance(p, vertices, faces), resolution, blo, bhi)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def write(grid: SDFGrid | np.ndarray, path: str, force: bool = False) -> str:
    """Write the grid values as a Mitsuba ``.vol`` file; refuse to overwrite unless ``force``."""
    import mitsuba as mi
    from ..variant import ensure_variant

    if not str(path).lower().endswith(".vol"):
        raise PbdrError(f"SDF output must be a .vol file, got '{path}'")
    if os.path.exists(path) and not force:
        raise PbdrError(f"{path} already exists; pass --force to replace it")
    values = grid.values if isinstance(grid, SDFGrid) else np.asarray(grid, dtype=np.float32)
    if values.ndim == 4 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim != 3:
        raise PbdrError(f"SDF grid must be 3-D (Z, Y, X), got shape {values.shape}")
    ensure_variant()
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PbdrError(f"output folder does not exist: {folder}")
    mi.VolumeGrid(np.ascontiguousarray(values, dtype=np.float32)[..., None]).write(str(path))
    return str(path)


def read(path: str) -> np.ndarray:
    """Values (Z, Y, X) of a single-channel ``.vol`` grid."""
    import mitsuba as mi
    from ..variant import ensure_variant

    if not os.path.isfile(path):
        raise PbdrError(f"grid file not found: {path}")
    ensure_variant()
    try:
        values = np.array(mi.VolumeGrid(str(path)), dtype=np.float32)
    except Exception as exc:
        raise PbdrError(f"cannot read grid {path}: {one_line(exc)}") from None
    if values.ndim == 4:
        if values.shape[-1] != 1:
            raise PbdrError(f"{path} has {values.shape[-1]} channels; an SDF has one")
        values = values[..., 0]
    return values
