r"""Position-welded edge tables of triangle meshes.

Boundary terms of the derivative live on the edges of meshes where the
image (or the integrand at a shading point) is discontinuous: *boundary*
edges of open meshes (one adjacent face), and *silhouette* edges, where the
two adjacent faces point to opposite sides of the viewpoint
:math:`o`:

.. math::

    \operatorname{sign}\big(n_0 \cdot (v_0 - o)\big) \neq \operatorname{sign}\big(n_1 \cdot (v_0 - o)\big).

Meshes as Mitsuba stores them split vertices at UV and normal seams and at
creases (the built-in ``cube`` has 24 vertices, not 8), so two faces that
meet in space may share no vertex *index*. Edges are therefore matched by
vertex **position** (welded on a grid of ``WELD_TOLERANCE`` times the mesh
size). Interior edges between coplanar faces never contribute and are
dropped. Every other interior edge is a ``crease``: the radiance can jump
there even when both faces are visible, so it is a candidate whenever a
face is seen from the front (always, on two-sided surfaces). On flat-shaded
meshes the normal jumps; on smooth-shaded ones the light that the face's
own plane cuts off does (measured: leaving smooth edges out left blocks of
a smooth icosphere 10 standard errors off finite differences). The table is rebuilt whenever the vertex positions change (a hash
of the detached positions is the cache key).

The topology (which vertex indices, which faces) is NumPy; the geometry
(endpoints, face normals) is gathered with Dr.Jit from the shape's vertex
buffer, so it stays attached to whatever parameter moves the mesh
(``*.vertex_positions``, ``*.to_world``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

WELD_TOLERANCE = 1e-6       # relative to the mesh's bounding-box diagonal
FLAT_COSINE = 1.0 - 1e-6    # interior edges with n0·n1 above this are flat


@dataclass
class EdgeTopology:
    """Edges of one mesh: original vertex indices of the endpoints and faces."""

    v0: np.ndarray          # E, vertex index of the first endpoint
    v1: np.ndarray          # E, vertex index of the second endpoint
    face0: np.ndarray       # E x 3, vertex indices of the first adjacent face
    face1: np.ndarray       # E x 3, of the second face (copy of face0 on boundary edges)
    boundary: np.ndarray    # E, bool: one adjacent face (or more than two)
    crease: np.ndarray      # E, bool: an interior edge between faces that are not coplanar
    face_id0: np.ndarray    # E, index of the first adjacent face in the mesh's face buffer
    face_id1: np.ndarray    # E, of the second one
    corners: np.ndarray     # E, packed corners of v0 and v1 in each face (``edge_barycentrics``)

    def __len__(self) -> int:
        return len(self.v0)

    def subset(self, keep: np.ndarray) -> "EdgeTopology":
        """The edges where ``keep`` (E, bool) is true."""
        return EdgeTopology(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def weld(positions: np.ndarray, tolerance: float = WELD_TOLERANCE) -> np.ndarray:
    """Welded id per vertex: vertices at the same position get the same id."""
    if len(positions) == 0:
        return np.zeros(0, dtype=np.int64)
    extent = float(np.linalg.norm(positions.max(axis=0) - positions.min(axis=0)))
    cell = max(extent, 1e-30) * tolerance
    keys = np.round(positions / cell).astype(np.int64)
    _, ids = np.unique(keys, axis=0, return_inverse=True)
    return ids.reshape(-1)


def face_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (positions[faces[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(length, 1e-30)


def build_topology(positions: np.ndarray, faces: np.ndarray, keep_flat: bool = False) -> EdgeTopology:
    """Edge table of a triangle mesh given as V x 3 positions and F x 3 indices."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    wid = weld(positions)
    wf = wid[faces]
    degenerate = (wf[:, 0] == wf[:, 1]) | (wf[:, 1] == wf[:, 2]) | (wf[:, 2] == wf[:, 0])
    fidx = np.nonzero(~degenerate)[0]
    # Three edges per face: (0,1), (1,2), (2,0) in face-local corners.
    corners = np.array([[0, 1], [1, 2], [2, 0]])
    e_face = np.repeat(fidx, 3)
    e_corner = np.tile(corners, (len(fidx), 1))
    ends = wf[e_face[:, None], e_corner]                 # welded ids of the endpoints
    key = np.sort(ends, axis=1)
    uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    first = np.zeros(len(uniq), dtype=np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    i0 = order[first]                                   # first half-edge of each edge
    i1 = order[np.minimum(first + 1, len(order) - 1)]   # second one (if any)
    manifold = counts == 2
    boundary = ~manifold
    i1 = np.where(manifold, i1, i0)

    f0, f1 = faces[e_face[i0]], faces[e_face[i1]]
    v0 = faces[e_face[i0], e_corner[i0, 0]]
    v1 = faces[e_face[i0], e_corner[i0, 1]]
    # The corners of v0 and v1 in each face (2 bits each); the second face
    # may list the (welded) ends the other way round.
    same = wf[e_face[i1], e_corner[i1, 0]] == wid[v0]
    k1_v0 = np.where(same, e_corner[i1, 0], e_corner[i1, 1])
    k1_v1 = np.where(same, e_corner[i1, 1], e_corner[i1, 0])
    corners = e_corner[i0, 0] | (e_corner[i0, 1] << 2) | (k1_v0 << 4) | (k1_v1 << 6)
    keep = boundary.copy()
    n = face_normals(positions, faces)
    cos = np.einsum("ij,ij->i", n[e_face[i0]], n[e_face[i1]])
    folded = cos < FLAT_COSINE
    keep |= True if keep_flat else folded
    # Every non-flat interior edge is a crease of the shading: flat shading
    # jumps there, and with interpolated normals so does the light a face's
    # own plane cuts off (directions above the shading normal's horizon but
    # below the face, hidden by the mesh), which differs on the two faces.
    crease = folded & ~boundary
    return EdgeTopology(v0[keep], v1[keep], f0[keep], f1[keep], boundary[keep], crease[keep],
                        e_face[i0][keep], e_face[i1][keep], corners[keep])


def edge_barycentrics(corners: mi.UInt32, face: int, s: mi.Float) -> mi.Point2f:
    """Mitsuba's ``prim_uv`` on adjacent face ``face`` (0 or 1) of the point
    at ``s`` along edges p0 -> p1, from their packed ``corners``."""
    def corner(k: mi.UInt32) -> mi.Point2f:
        return mi.Point2f(dr.select(k == 1, 1.0, 0.0), dr.select(k == 2, 1.0, 0.0))
    shift = 4 * face
    return dr.lerp(corner((corners >> shift) & 3), corner((corners >> (shift + 2)) & 3), s)


_CACHE: dict[int, tuple[bytes, EdgeTopology]] = {}
# per scene: (key, static tables without shared boundaries, the tables the key names)
_SHARED: dict[int, tuple[tuple, dict[int, EdgeTopology], list]] = {}
_GEOMETRY: dict[int, tuple[EdgeTopology, int, tuple]] = {}   # gathered edges of static meshes


def mesh_topology(mesh: mi.Mesh) -> EdgeTopology:
    """The (cached) edge table of a Mitsuba mesh at its current vertex positions."""
    positions = np.array(dr.detach(mesh.vertex_positions_buffer()), dtype=np.float32)
    digest = hashlib.blake2b(positions.tobytes(), digest_size=16).digest()
    cached = _CACHE.get(id(mesh))
    if cached is not None and cached[0] == digest:
        return cached[1]
    faces = np.array(mesh.faces_buffer(), dtype=np.int64)
    topo = build_topology(positions.reshape(-1, 3), faces.reshape(-1, 3))
    _CACHE[id(mesh)] = (digest, topo)
    return topo


@dataclass
class EdgeSet:
    """All candidate edges of a scene; Dr.Jit arrays, attached to the geometry's parameters.
    The edges of meshes whose vertex positions carry gradients come first
    (``moving_count`` of them): only they have a velocity."""

    p0: mi.Point3f
    p1: mi.Point3f
    n0: mi.Vector3f         # unit normal of the first adjacent face
    n1: mi.Vector3f         # of the second one (equal to n0 on boundary edges)
    boundary: mi.Bool       # open-mesh boundary, or a crease of a two-sided shape: always a candidate
    shape_index: mi.UInt32  # index into scene.shapes()
    facing: mi.Bool         # a crease of a one-sided shape: a candidate when a face is seen from the front
    open: mi.Bool           # an open-mesh boundary (one adjacent face): one can see past it
    c0: mi.Point3f          # centroid of the first adjacent face (which side of the edge it lies on)
    c1: mi.Point3f          # of the second one
    prim0: mi.UInt32        # index of the first adjacent face in its mesh (Mitsuba's ``prim_index``)
    prim1: mi.UInt32        # of the second one
    corners: mi.UInt32      # corners of the ends in each face (``edge_barycentrics``)
    shape_host: np.ndarray  # shape_index on the host (no read-back)
    moving_count: int = 0   # edges of meshes with gradients: the first ones

    def __len__(self) -> int:
        return dr.width(self.boundary) if dr.width(self.p0) > 0 else 0

    def numpy(self) -> dict[str, np.ndarray]:
        """Detached copies (E x 3 / E) for host-side selection and projection."""
        def arr(v: dr.ArrayBase) -> np.ndarray:
            # Component by component: an evaluated Float reads back without a kernel.
            if not len(self):
                return np.zeros((0, 3))
            return np.stack([np.array(dr.detach(v[k]), dtype=np.float64) for k in range(3)], axis=1)
        def flag(v: mi.Bool) -> np.ndarray:
            return np.array(v, dtype=bool) if len(self) else np.zeros(0, bool)
        return {"p0": arr(self.p0), "p1": arr(self.p1), "n0": arr(self.n0), "n1": arr(self.n1),
                "boundary": flag(self.boundary), "facing": flag(self.facing), "open": flag(self.open),
                "shape": self.shape_host.copy()}


_DEVICE: dict[int, tuple[EdgeTopology, int, tuple, tuple, tuple]] = {}


def _device_topology(mesh: mi.Mesh, topo: EdgeTopology, index: int) -> tuple[tuple, tuple, tuple]:
    """The topology's vertex indices (v0, v1, face0's three, face1's three),
    flags (boundary, shape index, facing, open) and faces (the two faces'
    indices, the ends' corners in them) as Dr.Jit arrays, uploaded once per
    topology: each upload is a task of its own."""
    cached = _DEVICE.get(id(mesh))
    if cached is not None and cached[0] is topo and cached[1] == index:
        return cached[2:]
    one_sided = is_one_sided(mesh)
    ends = (topo.v0, topo.v1, *(topo.face0[:, i] for i in range(3)), *(topo.face1[:, i] for i in range(3)))
    ends = tuple(mi.UInt32(e.astype(np.uint32)) for e in ends)
    flags = (mi.Bool(topo.boundary | (topo.crease & (not one_sided))), dr.full(mi.UInt32, index, len(topo)),
             mi.Bool(topo.crease & one_sided), mi.Bool(topo.boundary))
    faces = tuple(mi.UInt32(a.astype(np.uint32)) for a in (topo.face_id0, topo.face_id1, topo.corners))
    dr.eval(ends, flags, faces)
    _DEVICE[id(mesh)] = (topo, index, ends, flags, faces)
    return ends, flags, faces


def concat_lanes(items: list) -> dr.ArrayBase:
    """Dr.Jit arrays of one type joined lane-wise (3-vectors component by
    component: ``dr.concat`` joins nested arrays along their first axis)."""
    if len(items) == 1:
        return items[0]
    if dr.depth_v(items[0]) > 1:
        return type(items[0])(*(dr.concat([it[k] for it in items]) for k in range(len(items[0]))))
    return dr.concat(items)


def _normal(a: mi.Point3f, b: mi.Point3f, c: mi.Point3f) -> mi.Vector3f:
    return mi.Vector3f(dr.normalize(dr.cross(b - a, c - a)))     # Point3f differences cross to a Point3f


def without_shared_boundaries(meshes: list[tuple[int, mi.Mesh, EdgeTopology]],
                              tolerance: float) -> dict[int, EdgeTopology]:
    """The tables of ``meshes`` (shape index, mesh, table) with every boundary
    edge that an earlier mesh's boundary edge already lies on dropped.

    Two open meshes that meet along a common edge (the floor and a wall of a
    room built from rectangles) form one crease, not two boundaries: each
    boundary edge's side rays see the other mesh beyond it, so each would
    count the whole jump. Edges match by their end points, welded on a grid
    of ``tolerance`` (world units); edges that overlap only in part are kept.
    """
    seen: set[tuple] = set()
    out = {}
    for index, mesh, topo in meshes:
        if not topo.boundary.any():
            out[index] = topo
            continue
        positions = np.array(dr.detach(mesh.vertex_positions_buffer()), dtype=np.float64).reshape(-1, 3)
        ends = np.round(positions[np.stack([topo.v0, topo.v1], axis=1)] / tolerance).astype(np.int64)
        keys = [tuple(sorted((tuple(a), tuple(b)))) for a, b in ends]
        keep = np.ones(len(topo), dtype=bool)
        for e in np.nonzero(topo.boundary)[0]:
            keep[e] = keys[e] not in seen
        seen.update(keys[e] for e in np.nonzero(topo.boundary)[0])
        out[index] = topo if keep.all() else topo.subset(keep)
    return out


def static_tables(scene: mi.Scene) -> dict[int, EdgeTopology]:
    """The edge tables of the meshes of ``scene`` that no parameter moves,
    without shared boundaries (cached while none of them changes)."""
    meshes = [(index, shape, mesh_topology(shape)) for index, shape in enumerate(scene.shapes())
              if shape.is_mesh() and not dr.grad_enabled(shape.vertex_positions_buffer())]
    key = tuple((index, id(topo)) for index, _, topo in meshes)
    cached = _SHARED.get(id(scene))
    if cached is None or cached[0] != key:
        bbox = scene.bbox()
        extent = float(dr.norm(bbox.max - bbox.min)) if bbox.valid() else 1.0
        cached = (key, without_shared_boundaries(meshes, max(extent, 1e-30) * WELD_TOLERANCE * 10),
                  [topo for _, _, topo in meshes])      # keeps the ids in the key alive
        _SHARED[id(scene)] = cached
    return cached[1]


def scene_edges(scene: mi.Scene) -> EdgeSet:
    """Every boundary edge and every non-flat interior edge of every mesh of
    ``scene``: the moving meshes' (vertex positions with gradients) first.
    A boundary edge that two static meshes share counts once
    (``without_shared_boundaries``)."""
    moving, static_parts, shape_host, static_host = [], [], [], []
    static_topo = static_tables(scene)
    for index, shape in enumerate(scene.shapes()):
        if not shape.is_mesh():
            continue  # analytic shapes (sphere, disk, SDF) have no edges to sample
        topo = static_topo[index] if index in static_topo else mesh_topology(shape)
        if len(topo) == 0:
            continue
        buf = shape.vertex_positions_buffer()
        static = not dr.grad_enabled(buf)
        (static_host if static else shape_host).append(np.full(len(topo), index, np.int64))
        parts = static_parts if static else moving
        cached = _GEOMETRY.get(id(shape))
        if static and cached is not None and cached[0] is topo and cached[1] == index:
            parts.append(cached[2])     # a mesh that no parameter moves: gathered once
            continue
        ends, flags, faces = _device_topology(shape, topo, index)
        p0, p1, *corners = (dr.gather(mi.Point3f, buf, i) for i in ends)
        f0, f1 = corners[:3], corners[3:]
        part = (p0, p1, _normal(*f0), _normal(*f1), *flags,
                mi.Point3f((f0[0] + f0[1] + f0[2]) / 3), mi.Point3f((f1[0] + f1[1] + f1[2]) / 3), *faces)
        if static:
            dr.eval(*part)
            _GEOMETRY[id(shape)] = (topo, index, part)
        parts.append(part)
    moving_count = sum(len(h) for h in shape_host)
    parts, shape_host = moving + static_parts, shape_host + static_host
    if not parts:
        empty3 = dr.zeros(mi.Point3f, 0)
        return EdgeSet(empty3, empty3, mi.Vector3f(empty3), mi.Vector3f(empty3),
                       dr.zeros(mi.Bool, 0), dr.zeros(mi.UInt32, 0), dr.zeros(mi.Bool, 0), dr.zeros(mi.Bool, 0),
                       empty3, empty3, dr.zeros(mi.UInt32, 0), dr.zeros(mi.UInt32, 0), dr.zeros(mi.UInt32, 0),
                       np.zeros(0, np.int64))
    # A part lists the device fields of EdgeSet in order.
    edges = EdgeSet(*(concat_lanes([p[i] for p in parts]) for i in range(len(parts[0]))),
                    np.concatenate(shape_host), moving_count)
    # One kernel of fixed shape; left lazy, the gathers fuse with whatever
    # else is pending and the kernel recompiles on every call.
    dr.eval(edges.p0, edges.p1, edges.n0, edges.n1, edges.boundary, edges.shape_index, edges.facing,
            edges.open, edges.c0, edges.c1, edges.prim0, edges.prim1, edges.corners)
    return edges


def is_one_sided(shape: mi.Shape) -> bool:
    """Whether a shape looks black from behind: a BSDF without back side or
    transmission (diffuse, conductors, ...), and area emitters emit forwards only."""
    bsdf = shape.bsdf()
    if bsdf is None:
        return shape.emitter() is not None
    flags = int(dr.min(bsdf.flags()) if not isinstance(bsdf.flags(), int) else bsdf.flags())
    return not mi.has_flag(flags, mi.BSDFFlags.BackSide) and not mi.has_flag(flags, mi.BSDFFlags.Transmission)


def silhouette_mask(p0: np.ndarray, n0: np.ndarray, n1: np.ndarray, boundary: np.ndarray,
                    origin: np.ndarray, facing: np.ndarray | None = None) -> np.ndarray:
    """Edges (E x 3 arrays) that can be discontinuities seen from ``origin``.

    Boundaries, silhouettes, and ``facing`` creases with a face seen from the
    front: a crease of a one-sided surface seen from behind on both faces
    has the same (zero) radiance on both sides.
    """
    d = p0 - origin
    s0 = np.einsum("ij,ij->i", n0, d)
    s1 = np.einsum("ij,ij->i", n1, d)
    front = (s0 < 0) | (s1 < 0)
    return boundary | (s0 * s1 < 0) | ((facing if facing is not None else False) & front)
