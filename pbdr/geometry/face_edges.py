"""Per-face edge classes of triangle meshes, for boundary tests at ray hits.

A warp-based estimator (``pbdr_reparam``) needs, at any point where a ray
hits a triangle, the distance to the nearest edge of that triangle *that can
be a discontinuity*. Edges between coplanar faces (the diagonal of a quad)
never are; boundary edges of open meshes and shading creases always are;
smooth interior edges are when they are silhouettes from the ray's origin:
the two faces point to opposite sides of it. Edges are matched by welded
vertex position (``pbdr.geometry.edges.weld``), like the edge tables.

The table holds, per face and per edge opposite corner k (where the
barycentric coordinate b_k vanishes), a class (0 never, 1 always, 2
silhouette test), the neighbouring face's normal and the edge's two end
points, so that a ray's angular distance to the edge can be measured.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from .edges import FLAT_COSINE, face_normals, weld

NEVER, ALWAYS, SILHOUETTE = 0.0, 1.0, 2.0


EDGE_FLOATS = 10    # class, neighbour normal (3), end points (3 + 3)


def face_edge_classes(positions: np.ndarray, faces: np.ndarray,
                      normals: np.ndarray | None = None) -> np.ndarray:
    """F x 3 x 10 array: (class, neighbour normal, end points a, b) of the edge
    opposite each corner."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    wid = weld(positions)
    n_face = face_normals(positions, faces)
    F = len(faces)
    a = np.stack([faces[:, (k + 1) % 3] for k in range(3)], axis=1).reshape(-1)   # F*3
    b = np.stack([faces[:, (k + 2) % 3] for k in range(3)], axis=1).reshape(-1)
    key = np.sort(np.stack([wid[a], wid[b]], axis=1), axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    face_of = np.repeat(np.arange(F), 3)
    # The other half-edge of each edge (itself on boundary / non-manifold edges).
    order = np.argsort(inverse, kind="stable")
    first = np.zeros(counts.size, dtype=np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    pos_in_group = np.empty_like(order)
    pos_in_group[order] = np.arange(order.size) - first[inverse[order]]
    manifold = counts[inverse] == 2
    partner = np.minimum(first[inverse] + 1 - np.minimum(pos_in_group, 1), order.size - 1)
    other = np.where(manifold, order[partner], np.arange(order.size))
    n_self, n_other = n_face[face_of], n_face[face_of[other]]
    folded = np.einsum("ij,ij->i", n_self, n_other) < FLAT_COSINE
    if normals is None:
        crease = folded
    else:
        normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
        # Shading normals at the two welded corners, seen from both faces.
        a2 = np.where(wid[faces[face_of[other]]] == wid[a][:, None], faces[face_of[other]], -1).max(axis=1)
        b2 = np.where(wid[faces[face_of[other]]] == wid[b][:, None], faces[face_of[other]], -1).max(axis=1)
        split = (np.abs(normals[a] - normals[np.maximum(a2, 0)]).max(axis=1) > 1e-4) | \
                (np.abs(normals[b] - normals[np.maximum(b2, 0)]).max(axis=1) > 1e-4)
        crease = folded & split
    cls = np.where(~manifold | crease, ALWAYS, np.where(folded, SILHOUETTE, NEVER))
    out = np.concatenate([cls[:, None], n_other, positions[a], positions[b]],
                         axis=1).reshape(F, 3, EDGE_FLOATS)
    return out.astype(np.float32)


_CACHE: dict[int, tuple[bytes, mi.Float]] = {}


@dataclass
class FaceEdgeTable:
    """Edge classes of every mesh of a scene, one flat Dr.Jit buffer."""

    meshes: list[tuple[mi.Shape, int]]     # (mesh, offset in faces)
    data: mi.Float                         # (total faces) x 3 x EDGE_FLOATS

    @staticmethod
    def of(scene: mi.Scene) -> "FaceEdgeTable":
        meshes, chunks, offset = [], [], 0
        for shape in scene.shapes():
            if not shape.is_mesh():
                continue
            positions = np.array(dr.detach(shape.vertex_positions_buffer()), dtype=np.float32)
            digest = hashlib.blake2b(positions.tobytes(), digest_size=16).digest()
            cached = _CACHE.get(id(shape))
            if cached is None or cached[0] != digest:
                normals = (np.array(shape.vertex_normals_buffer()) if shape.has_vertex_normals()
                           else None)
                table = face_edge_classes(positions, np.array(shape.faces_buffer()), normals)
                cached = (digest, table)
                _CACHE[id(shape)] = cached
            meshes.append((shape, offset))
            chunks.append(cached[1].reshape(-1))
            offset += shape.face_count()
        data = mi.Float(np.concatenate(chunks)) if chunks else mi.Float(0.0)
        return FaceEdgeTable(meshes, data)

    def edge_angle(self, si: mi.SurfaceInteraction3f, o: mi.Point3f, d: mi.Vector3f,
                   active: mi.Bool) -> mi.Float:
        """Angular distance (sine) from the ray (o, d) to the nearest edge of the
        hit triangle that can be a discontinuity seen from ``o`` (the plane
        through o and the edge); +inf when the triangle has none or the hit
        is not on a mesh. A face seen edge-on is near its edges, as it should
        be: its silhouette is one."""
        base = mi.UInt32(0)
        known = mi.Bool(False)
        for shape, offset in self.meshes:
            on = si.shape == mi.ShapePtr(shape)
            base = dr.select(on, offset, base)
            known |= on
        active = active & known
        face = base + si.prim_index
        to_o = o - si.p
        facing = dr.dot(si.n, to_o)
        δ = mi.Float(dr.inf)
        for k in range(3):
            idx = (face * 3 + k) * EDGE_FLOATS

            def vec(c: int) -> mi.Vector3f:
                return mi.Vector3f(*(dr.gather(mi.Float, self.data, idx + c + j, active) for j in range(3)))

            cls = dr.gather(mi.Float, self.data, idx, active)
            n_nb, a, b = vec(1), vec(4), vec(7)
            silhouette = (cls == SILHOUETTE) & ((dr.dot(n_nb, to_o) > 0) != (facing > 0))
            edge = (cls == ALWAYS) | silhouette
            m = dr.cross(a - o, b - o)
            sin_δ = dr.abs(dr.dot(d, m)) * dr.rsqrt(dr.maximum(dr.squared_norm(m), 1e-30))
            δ = dr.select(active & edge, dr.minimum(δ, sin_δ), δ)
        return δ
