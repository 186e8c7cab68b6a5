r"""
Choosing a secondary edge, and a point on it, as seen from a shading point
==========================================================================

The secondary boundary term at a shading point :math:`p` (normal :math:`n`)
is an integral over 3D edge points :math:`m` (``secondary_edges.py``).
Written over the angle :math:`\varphi` between :math:`m - p` and the
perpendicular from :math:`p` to the edge's line (distance :math:`d`, so
:math:`r = \lVert m - p\rVert = d/\cos\varphi`), the measure is
:math:`\sin\alpha / r^2\, d\ell = \cos\varphi / d\; d\varphi` and the
integrand is

.. math::

    f_s(\omega)\, \Delta L\, (n_h \cdot \dot m)\; \frac{\cos\varphi}{d}\, d\varphi,
    \qquad f_s \text{ including } \max(0, n\cdot\omega).

Two strategies draw (edge, point) at every shading point, combined by
one-sample MIS (the balance heuristic, i.e. the mixture density
:math:`q\, p_{\text{light}} + (1-q)\, p_{\text{geom}}`, :math:`q = 1/2` when
the scene has mesh area emitters):

- **geometry**: edge :math:`j` with probability :math:`W_j / \sum_i W_i`,

  .. math::

      W_j(a, b) = \frac{1}{d} \int_{\varphi_a}^{\varphi_b} \max(0, n\cdot\omega)\cos\varphi\, d\varphi
      = \frac{1}{d}\Big[\tfrac{A}{2}(\varphi + \sin\varphi\cos\varphi) + \tfrac{B}{2}\sin^2\varphi\Big]_{\varphi_a}^{\varphi_b}

  over the part of the edge above the tangent plane
  (:math:`\omega = u\cos\varphi + e\sin\varphi`, :math:`u` towards the
  foot, :math:`e` along the edge, :math:`A = n\cdot u`, :math:`B = n\cdot e`);
  :math:`W_j = 0` unless the edge is a silhouette seen from :math:`p`, a
  boundary or a crease (of a one-sided surface: with a face seen from the
  front). BSDFs that transmit keep the whole edge and use
  :math:`(\sin\varphi_b - \sin\varphi_a)/d`.
- **light**: the same :math:`W` restricted to the part of the edge that
  hides an emitter triangle from :math:`p` (the triangle's cone from
  :math:`p` and its plane behind the edge: five linear constraints on the
  edge parameter), for edges one can see past (silhouettes seen from
  :math:`p` and open boundaries; a crease hides the light on both sides),
  plus the whole of the emitters' own edges. Shadow
  boundaries are where :math:`\Delta L` is large; the geometry strategy
  alone spends most samples on edge parts with nothing behind them.

Given the part :math:`[t_a, t_b]` of an edge, the point is drawn with
density :math:`\propto \cos\varphi\, d\varphi` (:math:`\sin\varphi` is
uniform), :math:`p_\ell = d^2 / (r^3 (\sin\varphi_b - \sin\varphi_a))` per
unit length: it cancels the :math:`1/r^2` of the measure, the cause of
unbounded weights at contact points when the point is drawn uniformly.

This is the per-point importance that Li et al. 2018 (sec. 5.2)
approximate with a hierarchy over edges; here it is evaluated exactly, in
one pass (streaming inversion), for a set of **candidate** edges: all of
them when there are at most ``edge_candidates`` (:math:`M`), else every
:math:`S`-th edge from a random offset, :math:`S = \lceil E/M \rceil`.
Each edge is then a candidate with probability :math:`1/S`, and the sums
:math:`\sum W` in the densities are replaced by :math:`S \sum_{\text{cand}} W`
(Horvitz-Thompson). The estimator stays unbiased: it is resampled
importance sampling (Talbot 2005) whose target may depend on the candidate
set, since :math:`f/\hat p \cdot \sum w` reduces to
:math:`\sum_{\text{cand}} S\, F_j` in expectation over the choice. Cost:
:math:`O(M \cdot T)` per sample for :math:`T \le` ``MAX_EMITTER_TRIANGLES``
emitter triangles.

Only edges that can contribute are weighed. The boundary value is
:math:`A_m\, n_h\cdot\dot m + A_p\, n_h\cdot\dot p` (``secondary_edges.py``):
zero for an edge of a static mesh seen from a point on a static surface.
There, only the edges of moving meshes count (from the Cornell box's walls,
the box's 12 of 36), so no sample is spent on an edge that adds nothing.
The moving edges come first in the ``EdgeSet``, and a static point scans
only them, with its own stride :math:`\lceil E_{\text{moving}}/M \rceil`: a
large static mesh neither costs scan time nor thins out the moving
candidates of points that cannot see it move.

Branches skip the light strategy's weight for the emitter triangles that
an edge does not hide, which is most of them.

The baseline ``uniform`` draws an edge uniformly from all edges and a point
uniformly on it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.edges import EdgeSet

SCHEMES = ("importance", "uniform")
DEFAULT_CANDIDATES = 2048   # edges weighed per shading point (0: all of them)
# Terminator arcs weighed per shading point: their term is far less noisy
# than the edges', so its scan is kept short.
DEFAULT_TERMINATOR_CANDIDATES = 32
DEFAULT_TERMINATOR_FRACTION = 0.25
MAX_EMITTER_TRIANGLES = 32   # more: the light strategy is off (its loop is unrolled)
LIGHT_FRACTION = 0.5         # q, the share of samples drawn by the light strategy
PLANE_TOLERANCE = 1e-4       # p within this fraction of |a - p| of a face's plane is in it
POSITION_TOLERANCE = 1e-5    # ... or within this times 1 + max|p| (rounding of positions)


@dataclass(frozen=True)
class SamplingOptions:
    """How secondary edges and terminators are drawn: the plugin parameters
    ``edge_sampling`` (one of ``SCHEMES``), ``edge_candidates`` and
    ``terminator_candidates`` (0: weigh every edge / face), and
    ``terminator_fraction`` (the share of path vertices that draw a terminator sample)."""

    scheme: str = "importance"
    candidates: int = DEFAULT_CANDIDATES
    terminator_candidates: int = DEFAULT_TERMINATOR_CANDIDATES
    terminator_fraction: float = DEFAULT_TERMINATOR_FRACTION

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown edge sampling scheme '{self.scheme}' ({', '.join(SCHEMES)})")
        if self.candidates < 0:
            raise ValueError(f"edge_candidates must be >= 0 (0: all edges), got {self.candidates}")
        if self.terminator_candidates < 0:
            raise ValueError(f"terminator_candidates must be >= 0 (0: all faces), got {self.terminator_candidates}")
        if not 0 < self.terminator_fraction <= 1:
            raise ValueError(f"terminator_fraction must be in (0, 1], got {self.terminator_fraction}")


@dataclass
class EdgeSample:
    index: mi.UInt32        # edge index into the EdgeSet
    t: mi.Float             # position on the edge, m = lerp(p0, p1, t)
    inv_pdf: mi.Float       # 1 / (density per unit length of the edge at m, edge choice included)
    active: mi.Bool
    view: "EdgeView"        # how the edge is seen from the shading point


@dataclass
class _Line:
    """An edge (a, b) in the frame of a shading point p."""

    to_a: mi.Vector3f       # a - p
    e: mi.Vector3f          # b - a
    length: mi.Float
    s0: mi.Float            # position of a along the line, from the foot of the perpendicular
    d: mi.Float             # distance from p to the line
    A: mi.Float             # n · (unit vector to the foot)
    B: mi.Float             # n · (unit edge direction)
    t_a: mi.Float           # the part above the tangent plane (for reflecting BSDFs)
    t_b: mi.Float
    ok: mi.Bool             # a candidate: silhouette, boundary or crease, and not degenerate
    through: mi.Bool        # one side may see past the edge: a silhouette or an open boundary

    def sin_phi(self, t: mi.Float) -> mi.Float:
        s = self.s0 + t * self.length
        return s * dr.rsqrt(s * s + self.d * self.d)

    def draw(self, lo: mi.Float, hi: mi.Float, u: mi.Float) -> mi.Float:
        """A point t on [lo, hi] with density ∝ cos φ dφ (sin φ is uniform between its ends)."""
        sin = dr.lerp(self.sin_phi(lo), self.sin_phi(hi), u)
        s = self.d * sin * dr.rsqrt(dr.maximum((1 - sin) * (1 + sin), 1e-12))
        return dr.clip((s - self.s0) / self.length, lo, hi)

    def weight(self, lo: mi.Float, hi: mi.Float, clip: mi.Bool) -> mi.Float:
        """W over the edge parameters [lo, hi] (0 when empty)."""
        s_a, s_b = self.s0 + lo * self.length, self.s0 + hi * self.length
        d = self.d
        inv_a, inv_b = dr.rsqrt(s_a * s_a + d * d), dr.rsqrt(s_b * s_b + d * d)
        sin_a, sin_b = s_a * inv_a, s_b * inv_b
        # φ_b - φ_a with one arctangent: tan of the difference, both in (-π/2, π/2)
        Δφ = dr.atan2(d * (s_b - s_a), d * d + s_a * s_b)
        G = 0.5 * self.A * (Δφ + d * (sin_b * inv_b - sin_a * inv_a)) + 0.5 * self.B * (sin_b * sin_b - sin_a * sin_a)
        W = dr.select(clip, G, sin_b - sin_a) / d
        return dr.select(self.ok & (hi > lo) & dr.isfinite(W), dr.maximum(W, 0.0), 0.0)


def plane_tolerance(p: mi.Point3f, to_x: mi.Vector3f) -> mi.Float:
    """How far from a face's plane (|n·(x - p)|, x on the face) p still
    counts as in it: a fraction of the distance, and the rounding of
    positions (si.p is interpolated in float: ~1e-7 |p|)."""
    return PLANE_TOLERANCE * dr.norm(to_x) + POSITION_TOLERANCE * (1 + dr.max(dr.abs(p)))


@dataclass
class EdgeView:
    """How an edge (a, ...) between faces 0 and 1 is seen from a point p."""

    candidate: mi.Bool      # it can be a discontinuity (``silhouette_mask``)
    through: mi.Bool        # one side may see past it (silhouette or p's horizon; boundaries: ``open``)
    front: tuple            # per face: p is in front of its plane (beyond the tolerance)
    horizon: mi.Bool        # p lies on one face's plane: the edge bounds p's own horizon

    @staticmethod
    def chord() -> "EdgeView":
        """A segment that always counts and that one cannot see past (a
        terminator arc's chord, ``secondary_terminators.py``)."""
        yes, no = mi.Bool(True), mi.Bool(False)
        return EdgeView(yes, no, (no, no), no)


def edge_view(p: mi.Point3f, n: mi.Vector3f, a: mi.Point3f, n0: mi.Vector3f, n1: mi.Vector3f,
              always: mi.Bool, facing: mi.Bool) -> EdgeView:
    """The edge (a, ...) with face normals n0, n1 seen from p (shading normal ``n``).

    A face whose plane holds p up to rounding (``plane_tolerance``: p on that
    face) is seen edge-on: its edges bound p's own horizon. Directions just
    below the face's plane enter the mesh; a smooth-shaded p, whose shading
    normal is not the face's, reflects light from both sides of that plane,
    so the edge counts, whatever the sign of the rounding (with flat shading
    the BSDF's cosine vanishes there: skipped), and one sees past it, above
    the plane. An edge between two faces that both hold p is none.
    ``always``: boundaries and creases that always count; ``facing``: a crease
    of a one-sided surface, counted when a face is seen from the front."""
    to_a = a - p
    s0, s1 = dr.dot(n0, to_a), dr.dot(n1, to_a)
    tol = plane_tolerance(p, to_a)
    in0, in1 = dr.abs(s0) <= tol, dr.abs(s1) <= tol
    tilted = lambda n_k: dr.abs(dr.dot(n, n_k)) < 1 - 1e-6    # noqa: E731 (shading normal is not the face's)
    horizon = (in0 & ~in1 & tilted(n0)) | (in1 & ~in0 & tilted(n1))
    silhouette = (s0 * s1 < 0) & ~in0 & ~in1
    front = (s0 < -tol, s1 < -tol)
    return EdgeView(always | silhouette | horizon | (facing & (front[0] | front[1])),
                    silhouette | horizon, front, horizon)


def is_candidate(p: mi.Point3f, n: mi.Vector3f, a: mi.Point3f, n0: mi.Vector3f, n1: mi.Vector3f,
                 always: mi.Bool, facing: mi.Bool) -> mi.Bool:
    """Edge (a, ...) seen from p (shading normal ``n``) can be a discontinuity (``edge_view``)."""
    return edge_view(p, n, a, n0, n1, always, facing).candidate


def edge_line(p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool, a: mi.Point3f, b: mi.Point3f,
              view: EdgeView, is_open: mi.Bool) -> _Line:
    """The edge (a, b) in the frame of p (shading normal ``n``), as ``view``
    sees it; ``is_open``: an open-mesh boundary, one can see past it."""
    to_a = a - p
    h_a, h_b = dr.dot(n, to_a), dr.dot(n, b - p)
    t_x = h_a / (h_a - h_b)
    t_a = dr.select(clip & (h_a < 0), t_x, 0.0)
    t_b = dr.select(clip & (h_b < 0), t_x, 1.0)
    above = ~clip | (h_a > 0) | (h_b > 0)
    e = b - a
    length = dr.norm(e)
    ê = e / length
    s0 = dr.dot(to_a, ê)
    q = to_a - s0 * ê
    d = dr.norm(q)
    ok = view.candidate & above & (length > 0) & (d > 1e-7) & (t_b > t_a)
    return _Line(to_a, e, length, s0, d, dr.dot(n, q) / d, dr.dot(n, ê), t_a, t_b, ok, is_open | view.through)


@dataclass
class _TriangleView:
    """An emitter triangle (t0, t1, t2) seen from a shading point p: what does
    not depend on the edge, computed once per point instead of once per edge."""

    planes: list            # normals of the three planes through p and the triangle's sides (oriented inwards)
    n_t: mi.Vector3f        # the triangle's normal
    h_c: mi.Float           # n_t · (t0 - p): the plane of the triangle, seen from p
    shape: mi.UInt32        # index of the emitting shape


def _triangle_view(p: mi.Point3f, t0: mi.Point3f, t1: mi.Point3f, t2: mi.Point3f,
                   shape: mi.UInt32) -> _TriangleView:
    c = [t0 - p, t1 - p, t2 - p]
    orient = dr.sign(dr.dot(c[0], dr.cross(c[1], c[2])))
    n_t = dr.cross(t1 - t0, t2 - t0)
    planes = [orient * dr.cross(c[0], c[1]), orient * dr.cross(c[1], c[2]), orient * dr.cross(c[2], c[0])]
    return _TriangleView(planes, n_t, dr.dot(n_t, c[0]), shape)


def _behind(line: _Line, tri: _TriangleView) -> tuple[mi.Float, mi.Float]:
    """Edge parameters [lo, hi] of the part that hides the triangle from p.

    m(t) - p = to_a + t e must lie in the triangle's cone from p, and m in
    front of the triangle's plane: all constraints are c0 + t c1 >= 0.
    """
    lo, hi = mi.Float(line.t_a), mi.Float(line.t_b)
    cons = [(dr.dot(line.to_a, N), dr.dot(line.e, N)) for N in tri.planes]
    σ = dr.sign(tri.h_c)
    h0, h1 = dr.dot(tri.n_t, line.to_a), dr.dot(tri.n_t, line.e)
    cons += [(σ * h0, σ * h1), (σ * (tri.h_c - h0), -σ * h1)]    # 0 < h_m/h_c <= 1
    empty = mi.Bool(tri.h_c >= 0)             # emitters are one-sided: p must see the front
    for c0, c1 in cons:
        root = -c0 / c1
        lo = dr.select(c1 > 0, dr.maximum(lo, root), lo)
        hi = dr.select(c1 < 0, dr.minimum(hi, root), hi)
        empty |= (c1 == 0) & (c0 < 0)
    return lo, dr.select(empty, lo, hi)


def emitter_triangles(scene: mi.Scene) -> tuple[np.ndarray, np.ndarray]:
    """The world-space triangles of the scene's mesh area emitters (T x 3 x 3,
    detached, float32) and the index in ``scene.shapes()`` of each one's shape."""
    tris, shapes = [], []
    for index, shape in enumerate(scene.shapes()):
        if shape.emitter() is None or not shape.is_mesh():
            continue
        pos = np.array(dr.detach(shape.vertex_positions_buffer()), dtype=np.float32).reshape(-1, 3)
        faces = np.array(shape.faces_buffer(), dtype=np.int64).reshape(-1, 3)
        tris.append(pos[faces])
        shapes += [index] * len(faces)
    tris = np.concatenate(tris) if tris else np.zeros((0, 3, 3), np.float32)
    return tris, np.array(shapes, dtype=np.int64)


def stream_step(W: mi.Float, total: mi.Float, j: mi.UInt32, chosen: mi.UInt32,
                 u: mi.Float) -> tuple[mi.UInt32, mi.Float]:
    """One step of the streaming inversion: edge ``j`` (weight ``W``, running
    sum ``total``) replaces ``chosen`` with probability W / total; ``u`` is
    rescaled so that it stays uniform either way."""
    P = W / total
    take = (W > 0) & (u < P)
    keep = (W > 0) & ~take
    u = dr.select(take, u / P, dr.select(keep, (u - P) / (1 - P), u))
    return dr.select(take, j, chosen), u


def pdf_on_part(line: _Line, lo: mi.Float, hi: mi.Float, W: mi.Float, t: mi.Float) -> mi.Float:
    """W · p_ℓ(t | [lo, hi]): the part's unnormalized density per unit length at t
    (the point drawn ∝ cos φ dφ on [lo, hi])."""
    s = line.s0 + t * line.length
    r2 = s * s + line.d * line.d
    p_l = line.d * line.d / (r2 * dr.sqrt(r2) * (line.sin_phi(hi) - line.sin_phi(lo)))
    return dr.select((W > 0) & (t >= lo) & (t <= hi), W * p_l, 0.0)


@dataclass(frozen=True)
class Candidates:
    """Which of ``count`` items (edges, faces; those of moving meshes first,
    ``moving_count`` of them) a shading point weighs: every S-th from a
    random offset, S = ⌈items / M⌉ for at most M candidates (all when M is 0).
    A point on a moving mesh weighs all items, a static point only the
    moving ones (a static item adds nothing there)."""

    count: int
    moving_count: int
    stride: int
    moving_stride: int

    @staticmethod
    def of(count: int, moving_count: int, M: int) -> "Candidates":
        if M <= 0:
            return Candidates(count, moving_count, 1, 1)
        return Candidates(count, moving_count, -(-count // M), max(-(-moving_count // M), 1))

    def at(self, moves: mi.Bool, u: mi.Float) -> tuple[mi.UInt32, mi.UInt32, mi.UInt32, mi.Float]:
        """(item count, stride S, first candidate, the rest of ``u``) per point:
        the offset is uniform in [0, S), from the leading digit of ``u``."""
        count = dr.select(moves, self.count, self.moving_count)
        S = dr.select(moves, self.stride, self.moving_stride)
        offset = mi.UInt32(dr.minimum(u * mi.Float(S), mi.Float(S - 1)))
        return count, S, offset, u * mi.Float(S) - mi.Float(offset)


@dataclass
class _EdgeRow:
    """What the scan reads of one edge."""

    a: mi.Point3f
    b: mi.Point3f
    n0: mi.Vector3f
    n1: mi.Vector3f
    always: mi.Bool         # a boundary or crease that always counts
    facing: mi.Bool         # a crease of a one-sided surface
    open: mi.Bool           # an open-mesh boundary
    own: mi.Bool            # an edge of an emitting mesh
    shape: mi.UInt32

    def view(self, p: mi.Point3f, n: mi.Vector3f) -> EdgeView:
        """How the edge is seen from p (shading normal ``n``): ``edge_view``."""
        return edge_view(p, n, self.a, self.n0, self.n1, self.always, self.facing)


class PackedRows:
    """Per-item values as one flat table, a row of ``width`` floats per item
    (the columns, padded to a power of two). A scan reads a candidate's row
    with packet loads instead of a gather per component."""

    def __init__(self, columns: list[mi.Float], count: int) -> None:
        self.width = 1 << max(len(columns) - 1, 0).bit_length()
        # The variant's dynamic float array type (packet gathers need it).
        self.array_xf = getattr(sys.modules[mi.Float.__module__], "ArrayXf")
        columns = [mi.Float(c) for c in columns]
        dr.eval(columns)    # columns still pending scatters (concatenated tables) cannot be read lazily
        padding = [dr.zeros(mi.Float, count)] * (self.width - len(columns))
        # Fortran order: the columns of one item are adjacent (one kernel).
        self.table = dr.ravel(self.array_xf(*columns, *padding), order="F")
        dr.eval(self.table)

    def __getitem__(self, j: mi.UInt32):
        """Row j (an ``ArrayXf``: entry k is column k)."""
        return dr.gather(self.array_xf, self.table, j, shape=(self.width, dr.width(j)))


def flag_bits(flags: list[mi.Bool]) -> mi.Float:
    """Booleans as the bits of one float column (exact up to 24 flags)."""
    return sum((dr.select(f, float(1 << k), 0.0) for k, f in enumerate(flags)), mi.Float(0))


def vector_at(row, k: int) -> mi.Vector3f:
    """Entries k, k + 1, k + 2 of a ``PackedRows`` row."""
    return mi.Vector3f(row[k], row[k + 1], row[k + 2])


def _edge_row(rows: PackedRows, j: mi.UInt32) -> _EdgeRow:
    """Edge j of the scan's table (columns: a, n0, n1, b, flag bits, shape; ``EdgeSampler``)."""
    r = rows[j]
    bits = mi.UInt32(r[12])
    always, facing, is_open, own = ((bits & (1 << k)) != 0 for k in range(4))
    return _EdgeRow(mi.Point3f(vector_at(r, 0)), mi.Point3f(vector_at(r, 9)), vector_at(r, 3), vector_at(r, 6),
                    always, facing, is_open, own, mi.UInt32(r[13]))


class EdgeSampler:
    """Draws secondary-edge samples at shading points with one of ``SCHEMES``."""

    def __init__(self, scene: mi.Scene, edges: EdgeSet, options: SamplingOptions) -> None:
        self.scheme = scheme = options.scheme
        self.count = len(edges)
        if scheme != "importance":
            host = edges.numpy()
            length = np.linalg.norm(host["p1"] - host["p0"], axis=1)
            pmf = np.where(length > 0, 1.0, 0.0)     # uniform over the edges that have a length
            self.pmf = mi.Float((pmf / pmf.sum()).astype(np.float32))
            self.distr = mi.DiscreteDistribution(mi.Float(pmf.astype(np.float32)))
            own = dr.zeros(mi.Bool, self.count)     # (the light strategy's flag: unused here)
        else:
            # The moving meshes' edges come first in the EdgeSet: a point on a
            # static surface weighs only those (a static edge adds nothing there),
            # a moving point all. Candidate strides: every stride-th edge from a
            # random offset (all when 1).
            self.candidates = Candidates.of(self.count, edges.moving_count, options.candidates)
            own = dr.gather(mi.Bool, mi.Bool(self._emitter_triangles(scene)), edges.shape_index)
        # What is read of an edge, in one row (``_edge_row``).
        self.rows = PackedRows([*dr.detach(edges.p0), *dr.detach(edges.n0), *dr.detach(edges.n1),
                                *dr.detach(edges.p1), flag_bits([edges.boundary, edges.facing, edges.open, own]),
                                mi.Float(edges.shape_index)], self.count)

    def _emitter_triangles(self, scene: mi.Scene) -> np.ndarray:
        """World-space triangles of mesh area emitters (detached); returns
        which shapes emit (host bools per shape)."""
        tris, shapes = emitter_triangles(scene)
        self.tri_count = len(tris) if len(tris) <= MAX_EMITTER_TRIANGLES else 0
        self.q = LIGHT_FRACTION if self.tri_count else 0.0
        self.tri = [mi.Point3f(*(mi.Float(tris[:, k, i]) for i in range(3))) for k in range(3)]
        self.tri_shape = mi.UInt32(shapes.astype(np.uint32))
        flag = np.zeros(len(scene.shapes()), dtype=bool)
        flag[shapes] = True
        return flag

    # ---- per edge ----
    def _triangle_views(self, p: mi.Point3f) -> list[_TriangleView]:
        """The emitter triangles seen from shading points p."""
        views = []
        for k in range(self.tri_count):
            idx = mi.UInt32(k)
            views.append(_triangle_view(p, *(dr.gather(mi.Point3f, v, idx) for v in self.tri),
                                        dr.gather(mi.UInt32, self.tri_shape, idx)))
        return views

    @dr.syntax
    def _light_parts(self, e: _EdgeRow, line: _Line, clip: mi.Bool, W_g: mi.Float,
                     views: list[_TriangleView]) -> list:
        """(lo, hi, W) of each part of edge ``e`` the light strategy samples from
        (``W_g``: the edge's geometry weight, the whole of an emitter's own edge)."""
        parts = [(line.t_a, line.t_b, dr.select(e.own, W_g, 0.0))]
        for tri in views:
            lo, hi = _behind(line, tri)
            W = mi.Float(0.0)
            # Creases seen from p hide the light on both sides: only edges one
            # can see past. A branch: most edges hide no emitter triangle.
            if (hi > lo) & (tri.shape != e.shape) & line.through:
                W = line.weight(lo, hi, clip)
            parts.append((lo, hi, W))
        return parts

    @dr.syntax
    def _weights(self, j: mi.UInt32, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool,
                 views: list[_TriangleView]) -> tuple[mi.Float, mi.Float]:
        """(W_geometry, W_light) of edge j at p."""
        e = _edge_row(self.rows, j)
        W_g, W_light = mi.Float(0.0), mi.Float(0.0)
        # A branch, not a mask: most edges are not silhouettes seen from p, and
        # a SIMD packet of nearby points skips the rest of the work together.
        view = e.view(p, n)
        if view.candidate:
            line = edge_line(p, n, clip, e.a, e.b, view, e.open)
            W_g = line.weight(line.t_a, line.t_b, clip)
            if dr.hint(self.q > 0, mode="scalar"):
                # W_light is 0 unless the edge is an emitter's own or one can see past it.
                if (W_g > 0) & (line.through | e.own):
                    for _, _, W in self._light_parts(e, line, clip, W_g, views):
                        W_light += W
        return W_g, W_light

    # ---- sampling ----
    def sample(self, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool, u_strategy: mi.Float,
               u_edge: mi.Float, u_light: mi.Float, u_point: mi.Float, active: mi.Bool,
               moves: mi.Bool) -> EdgeSample:
        """An edge and a point on it for shading points ``p`` (normal ``n`` on the side of wi;
        ``moves``: p follows the parameters, else only moving edges are drawn)."""
        if self.scheme != "importance":
            idx = self.distr.sample(u_edge, active)
            e = _edge_row(self.rows, idx)
            inv_pdf = dr.norm(e.b - e.a) / dr.gather(mi.Float, self.pmf, idx)
            return EdgeSample(idx, u_point, inv_pdf, active, e.view(p, n))

        j_g, j_l, u_part, total_g, total_l = self._choose(p, n, clip, u_edge, u_light, active, moves)
        dr.eval(j_g, j_l, u_part, total_g, total_l)   # together: each alone would rerun the loop
        u_part = dr.clip(u_part, 0.0, 0.99999994)      # still uniform: picks the part of edge j_l
        q = dr.select(total_l > 0, self.q, 0.0)
        by_light = u_strategy < q
        idx = dr.select(by_light, j_l, j_g)
        e = _edge_row(self.rows, idx)
        view = e.view(p, n)
        line = edge_line(p, n, clip, e.a, e.b, view, e.open)
        # The part of the edge to draw the point from.
        lo, hi = mi.Float(line.t_a), mi.Float(line.t_b)
        W_g = line.weight(line.t_a, line.t_b, clip)
        if self.q > 0:
            parts = self._light_parts(e, line, clip, W_g, self._triangle_views(p))
            W_l = mi.Float(0.0)
            for _, _, W in parts:
                W_l += W
            target, acc, done = u_part * W_l, mi.Float(0.0), mi.Bool(False)
            for lo_k, hi_k, W in parts:
                take = by_light & ~done & (W > 0) & (acc + W > target)
                lo, hi = dr.select(take, lo_k, lo), dr.select(take, hi_k, hi)
                done |= take
                acc += W
        t = line.draw(lo, hi, u_point)

        pdf = (1 - q) * pdf_on_part(line, line.t_a, line.t_b, W_g, t) / total_g
        if self.q > 0:
            pdf_l = mi.Float(0.0)
            for lo_k, hi_k, W in parts:
                pdf_l += pdf_on_part(line, lo_k, hi_k, W, t)
            pdf += q * dr.select(total_l > 0, pdf_l / total_l, 0.0)
        active = active & (pdf > 0) & dr.isfinite(pdf)
        smp = EdgeSample(idx, t, dr.select(active, dr.rcp(pdf), 0.0), active, view)
        dr.eval(smp.t, smp.inv_pdf, smp.active)
        return smp

    @dr.syntax
    def _choose(self, p: mi.Point3f, n: mi.Vector3f, clip: mi.Bool, u_g: mi.Float, u_l: mi.Float,
                active: mi.Bool, moves: mi.Bool) -> tuple[mi.UInt32, mi.UInt32, mi.Float, mi.Float, mi.Float]:
        """One pass over the candidate edges: an edge ∝ W_geometry, one ∝ W_light,
        and both sums (Horvitz-Thompson estimates when the candidates are a subset).

        Streaming inversion: edge j replaces the choice with probability
        W_j / Σ_{i<=j} W_i, decided by one uniform number that is rescaled
        to stay uniform (P(j) = W_j / ΣW exactly, up to rounding); what is
        left of u_l is uniform again, given the choices, and is returned.
        """
        # Static points weigh the moving edges (the first ones), moving points all.
        count, S, offset, u_g = self.candidates.at(moves, u_g)
        total_g, total_l = mi.Float(0.0), mi.Float(0.0)
        j_g, j_l = mi.UInt32(0), mi.UInt32(0)
        j = mi.UInt32(offset)
        views = self._triangle_views(p)     # loop invariants
        # Read-only values stay out of the loop state (else the loop is traced twice).
        while dr.hint(active & (j < count), exclude=[p, n, clip, active, count, S, views]):
            W_g, W_l = self._weights(j, p, n, clip, views)
            total_g += W_g
            total_l += W_l
            j_g, u_g = stream_step(W_g, total_g, j, j_g, u_g)
            j_l, u_l = stream_step(W_l, total_l, j, j_l, u_l)
            j += S
        # Each edge is a candidate with probability 1/S: S·(candidate sum) estimates ΣW.
        S = mi.Float(S)
        return j_g, j_l, u_l, total_g * S, total_l * S
