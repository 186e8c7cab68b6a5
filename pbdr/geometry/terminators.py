r"""Shading terminators of smooth-shaded meshes: the curves where the
interpolated normal turns away from a viewpoint.

On a mesh with vertex normals, Mitsuba shades a point with the interpolated
normal :math:`n_s(b) = \sum_k b_k n_k` (barycentrics :math:`b`); BSDFs and
area emitters return nothing when it faces away from the viewer. Near a
silhouette the face can point towards the eye :math:`o` while
:math:`n_s` does not, so a thin black rim runs inside every silhouette, and
its inner boundary

.. math::

    h(b) = n_s(b) \cdot \big(o - p(b)\big) = 0, \qquad p(b) = \sum_k b_k v_k,

is a discontinuity of the image that lies inside triangles, on no edge.
:math:`h` is quadratic in the barycentrics, so on every triangle edge its
roots are those of a quadratic; a face whose edges it crosses twice holds
one arc of the terminator, represented here by its *chord* (the segment
between the two crossings). Estimators sample a point on the chord and
project it onto the arc (``integrators/boundary/primary_terminators.py``).

Faces crossed four times (two arcs, or one arc leaving and re-entering) and
arcs closed inside one face are not represented; both need normals that
turn by more than the face spans, and ``TerminatorChords.skipped`` counts
them. Back-facing faces of closed meshes are hidden behind front faces and
are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from .edges import face_normals, mesh_topology
from .moving import on_meshes

SMOOTH_TOLERANCE = 1e-8   # 1 - cos between vertex and face normals above which a mesh is smooth-shaded

# Barycentric (b1, b2) of the three corners; edge k runs from corner k to k+1.
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


@dataclass
class TerminatorChords:
    """Chords of terminator arcs, one per crossed face, over all smooth meshes."""

    shape_index: np.ndarray     # C, index into scene.shapes()
    face: np.ndarray            # C x 3, vertex indices of the face
    face_id: np.ndarray         # C, the face's index in its mesh
    a: np.ndarray               # C x 2, barycentrics (b1, b2) of the first end
    b: np.ndarray               # C x 2, of the second end
    p_a: np.ndarray             # C x 3, world positions of the ends
    p_b: np.ndarray             # C x 3
    skipped: int = 0            # faces with more than one arc (not represented)

    def __len__(self) -> int:
        return len(self.shape_index)


def edge_quadratic(n0: np.ndarray, n1: np.ndarray, v0: np.ndarray, v1: np.ndarray,
                   origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of h(t) = a t² + b t + h(0) along the edges v0 -> v1 (arrays of E
    edges): h(t) = (n0 + t Δn)·(o - v0 - t Δv)."""
    dn, dv = n1 - n0, v1 - v0
    return (-np.einsum("ij,ij->i", dn, dv),
            np.einsum("ij,ij->i", dn, origin - v0) - np.einsum("ij,ij->i", n0, dv))


def edge_roots(h0: np.ndarray, n0: np.ndarray, n1: np.ndarray, v0: np.ndarray, v1: np.ndarray,
               origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Roots t in [0, 1) of h along the edges v0 -> v1, as two columns (NaN
    where absent); ``h0`` is h at v0."""
    a, b = edge_quadratic(n0, n1, v0, v1, origin)
    c = h0
    roots = np.full((len(h0), 2), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - 4 * a * c
        sq = np.sqrt(np.maximum(disc, 0))
        q = -0.5 * (b + np.where(b >= 0, sq, -sq))
        quadratic = np.abs(a) > 1e-12 * (np.abs(b) + np.abs(c))
        r1 = np.where(quadratic, q / a, -c / b)
        r2 = np.where(quadratic, c / q, np.nan)
    ok = disc >= 0
    for k, r in enumerate((r1, r2)):
        roots[:, k] = np.where(ok & (r >= 0) & (r < 1), r, np.nan)
    # [0, 1): a root at a corner is counted once, by the edge leaving it.
    return roots[:, 0], roots[:, 1]


def mesh_terminators(positions: np.ndarray, normals: np.ndarray, faces: np.ndarray,
                     origin: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Faces crossed by the terminator seen from ``origin`` and their chords:
    (face ids, a, b as C x 2 barycentrics, number of faces skipped)."""
    P, N = positions[faces], normals[faces]                    # F x 3 x 3
    h = np.einsum("fkj,fkj->fk", N, origin - P)                 # F x 3
    candidates = ~((h > 0).all(axis=1) | (h < 0).all(axis=1)) | _bent_edges(h, P, N, origin)
    if closed:
        candidates &= np.einsum("fj,fj->f", face_normals(positions, faces), origin - P[:, 0]) > 0
    f = np.nonzero(candidates)[0]
    points = []
    for k in range(3):
        j = (k + 1) % 3
        r1, r2 = edge_roots(h[f, k], N[f, k], N[f, j], P[f, k], P[f, j], origin)
        for r in (r1, r2):
            points.append(np.where(np.isnan(r)[:, None], np.nan,
                                   (1 - r)[:, None] * CORNERS[k] + r[:, None] * CORNERS[j]))
    pts = np.stack(points, axis=1)                              # C' x 6 x 2, NaN where none
    found = ~np.isnan(pts[:, :, 0])
    count = found.sum(axis=1)
    two = count == 2
    order = np.argsort(~found, axis=1, kind="stable")           # the found ones first
    first = np.take_along_axis(pts, order[:, :1, None].repeat(2, axis=2), axis=1)[:, 0]
    second = np.take_along_axis(pts, order[:, 1:2, None].repeat(2, axis=2), axis=1)[:, 0]
    return f[two], first[two], second[two], int((count > 2).sum())


def _bent_edges(h: np.ndarray, P: np.ndarray, N: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Faces where h has the same sign at all corners but may change sign
    twice along an edge (its parabola dips through zero between the corners)."""
    out = np.zeros(len(h), dtype=bool)
    for k in range(3):
        j = (k + 1) % 3
        a, b = edge_quadratic(N[:, k], N[:, j], P[:, k], P[:, j], origin)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -b / (2 * a)
        out |= (t > 0) & (t < 1) & (b * b - 4 * a * h[:, k] > 0)
    return out


def smooth_faces(positions: np.ndarray, normals: np.ndarray, faces: np.ndarray,
                 tolerance: float = SMOOTH_TOLERANCE) -> bool:
    """Whether vertex normals differ from the face normals somewhere (interpolated
    shading; the built-in ``cube`` splits its normals per face and is flat).
    ``tolerance`` is on 1 - cos: the normals of a fine mesh differ from its
    faces' by about half its dihedral angles (1 - cos ~ 1e-6 at a million
    faces), flat normals by float rounding only."""
    n_f = face_normals(positions, faces)
    # normalized: float32 normals are unit to ~1e-7 only, far above the tolerance
    n_v = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    return bool((np.einsum("fkj,fj->fk", n_v[faces], n_f) < 1 - tolerance).any())


def mesh_arrays(mesh: mi.Mesh) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Detached (positions V x 3, vertex normals V x 3 or None, faces F x 3) of a mesh."""
    positions = np.array(dr.detach(mesh.vertex_positions_buffer()), dtype=np.float64).reshape(-1, 3)
    normals = (np.array(dr.detach(mesh.vertex_normals_buffer()), dtype=np.float64).reshape(-1, 3)
               if mesh.has_vertex_normals() else None)
    return positions, normals, np.array(mesh.faces_buffer(), dtype=np.int64).reshape(-1, 3)


_SMOOTH: dict[tuple[int, int, int], bool] = {}    # whether a mesh is smooth-shaded


def is_smooth_shaded(mesh: mi.Shape) -> bool:
    """Whether a mesh has vertex normals that differ from its face normals
    somewhere (``smooth_faces``; the built-in ``cube`` splits its normals per
    face and is flat), cached per mesh: a mesh stays smooth or flat as it moves."""
    if not mesh.is_mesh() or not mesh.has_vertex_normals():
        return False
    key = (id(mesh), mesh.vertex_count(), mesh.face_count())
    if key not in _SMOOTH:
        _SMOOTH[key] = smooth_faces(*mesh_arrays(mesh))
    return _SMOOTH[key]


def on_smooth_mesh(scene: mi.Scene, shape: mi.ShapePtr, active: mi.Bool) -> mi.Bool:
    """Whether each lane's ``shape`` is a smooth-shaded mesh (``is_smooth_shaded``)."""
    return on_meshes(shape, [mesh for mesh in scene.shapes() if is_smooth_shaded(mesh)], active)


def face_corners(mesh: mi.Mesh, face_ids: mi.UInt32) -> list:
    """Faces ``face_ids`` of a mesh with vertex normals: their corners (3 Point3f)
    and the normals there (3 Vector3f), attached to the mesh's parameters."""
    face = dr.gather(mi.Vector3u, mesh.faces_buffer(), face_ids)
    return ([dr.gather(mi.Point3f, mesh.vertex_positions_buffer(), face[k]) for k in range(3)]
            + [dr.gather(mi.Vector3f, mesh.vertex_normals_buffer(), face[k]) for k in range(3)])


def terminator_chords(scene: mi.Scene, origin: np.ndarray, shapes: np.ndarray | None = None) -> TerminatorChords:
    """The terminator chords of the smooth-shaded meshes seen from ``origin``
    (of those where the per-shape mask ``shapes`` is set, if given)."""
    parts, skipped = [], 0
    for index, mesh in enumerate(scene.shapes()):
        if not mesh.is_mesh() or not mesh.has_vertex_normals():
            continue
        if shapes is not None and not shapes[index]:
            continue
        if not is_smooth_shaded(mesh):
            continue
        positions, normals, faces = mesh_arrays(mesh)
        closed = not bool(mesh_topology(mesh).boundary.any())
        f, a, b, n_skipped = mesh_terminators(positions, normals, faces, np.asarray(origin, np.float64), closed)
        skipped += n_skipped
        P = positions[faces[f]]
        at = lambda bc: P[:, 0] + bc[:, :1] * (P[:, 1] - P[:, 0]) + bc[:, 1:] * (P[:, 2] - P[:, 0])  # noqa: E731
        parts.append((np.full(len(f), index), faces[f], f, a, b, at(a), at(b)))
    if not parts:
        z = np.zeros((0, 3))
        return TerminatorChords(np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros(0, np.int64),
                                z[:, :2], z[:, :2], z, z, skipped)
    cat = [np.concatenate([p[k] for p in parts]) for k in range(7)]
    return TerminatorChords(*cat, skipped=skipped)
