r"""
Guiding the path-space boundary samples: a learned grid over their sample space
===============================================================================

The boundary segments of ``pathspace.py`` are drawn from three uniforms
:math:`u = (u_0, u_1, u_2)`: :math:`u_0` the position along the edges laid
end to end (edge and point), :math:`u_1` the cosine of the angle to the
edge and :math:`u_2` the angle on the edge's plane-pencil arc. Most of that
cube contributes nothing (the shading point behind the edge is not seen,
the line beyond it sees no jump). As in psdr-jit (Zhang et al. 2020,
sec. 6: "a piecewise-constant distribution over the boundary sample
space", built there in a preprocessing pass), the term estimates, per
cell of an :math:`N_0 \times N_1 \times N_2` grid over :math:`u`, the
integral of the samples' magnitude (:math:`\sum |A_m| + |A_p|` of the
samples whose :math:`u` falls in it, luminance), and then draws
:math:`u` from the grid's piecewise-constant density

.. math::

    g(u) = N \Big((1 - \epsilon)\, \frac{w_c}{\sum_c w_c} + \frac{\epsilon}{N}\Big),
    \qquad N = N_0 N_1 N_2,

(:math:`\epsilon` = ``DEFENSIVE``: every cell keeps some density, so the
estimate stays unbiased wherever no sample has landed yet). :math:`u_0`
is drawn from the marginal :math:`g_0` by a stratified uniform (as the
baseline), then the :math:`(u_1, u_2)` cell from the conditional within
its slice. The light strategy's directions keep their own density; the
mixture's pencil part is weighted by :math:`g(u)/g_0(u_0)` and the edge
point's density by :math:`g_0(u_0)` (``pathspace.py``).

The grid is learned from the term's own samples, with no pass of its own.
Every guided call records each segment's :math:`u` and magnitude (the
estimate :math:`|f(u)| / p(u)` of its cell's integral, whatever density
drew it) and folds them into a running grid kept per integrator, scene
and settings: the next call draws from it. A grid therefore never depends on the random
numbers of the estimate it guides, and each estimate is unbiased for any
grid. Until ``pathspace_guiding`` segments per pixel have been recorded,
segments are drawn uniformly; in the call that reaches that count the rest
of its segments are drawn from the grid just built (two batches, each an
estimate of the whole term, averaged by their sample counts). Later calls
weigh their own samples by at least ``RECENT``, so that the grid follows
geometry that moves during an optimization; it is dropped when the edge
table changes size. :func:`forget` drops an integrator's grids (its next
call's result then no longer depends on the calls before it).
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np

GRID = (64, 8, 8)          # cells along u0 (edges), u1 (cos α), u2 (pencil angle)
DEFENSIVE = 0.5            # the share of the density spread uniformly over the cube
RECENT = 0.25             # the least weight of one call's samples in the running grid


class GuideGrid:
    """A piecewise-constant density over [0, 1)^3 from cell weights (N0 x N1 x N2, >= 0)."""

    def __init__(self, weights: np.ndarray) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        self.shape = weights.shape
        N = weights.size
        total = weights.sum()
        w = weights / total if total > 0 else np.full(weights.shape, 1.0 / N)
        w = (1 - DEFENSIVE) * w + DEFENSIVE / N
        w /= w.sum()
        n0, n1, n2 = self.shape
        marginal = w.reshape(n0, -1).sum(axis=1)
        cdf = np.cumsum(w.reshape(-1))
        self.density = mi.Float((w.reshape(-1) * N).astype(np.float32))
        self.marginal_density = mi.Float((marginal * n0).astype(np.float32))
        self.marginal = mi.DiscreteDistribution(mi.Float(marginal.astype(np.float32)))
        self.cdf = mi.Float(cdf.astype(np.float32))
        self.slice_start = mi.Float(np.concatenate([[0.0], cdf[n1 * n2 - 1::n1 * n2][:-1]]).astype(np.float32))
        self.slice_end = mi.Float(cdf[n1 * n2 - 1::n1 * n2].astype(np.float32))

    def draw(self, u_strat: mi.Float, v: mi.Float, u1: mi.Float, u2: mi.Float) -> tuple[mi.Float, mi.Float, mi.Float]:
        """u = (u0, u1, u2) with density ``density(u)``: u0 from the marginal
        (by the stratified uniform ``u_strat``), the (u1, u2) cell from the
        conditional (by ``v``), uniform within it (``u1``, ``u2``)."""
        n0, n1, n2 = self.shape
        s, ξ = self.marginal.sample_reuse(u_strat)
        u0 = dr.minimum((mi.Float(s) + ξ) / n0, 0.99999994)
        lo, hi = dr.gather(mi.Float, self.slice_start, s), dr.gather(mi.Float, self.slice_end, s)
        target = lo + v * (hi - lo)
        k = dr.binary_search(0, n0 * n1 * n2 - 1, lambda i: dr.gather(mi.Float, self.cdf, i) <= target)
        k = dr.clip(k, s * (n1 * n2), s * (n1 * n2) + n1 * n2 - 1)
        c = k % (n1 * n2)
        return u0, (mi.Float(c // n2) + u1) / n1, (mi.Float(c % n2) + u2) / n2

    def cell(self, u0: mi.Float, u1: mi.Float, u2: mi.Float) -> mi.UInt32:
        n0, n1, n2 = self.shape
        i = [dr.clip(mi.UInt32(dr.floor(u * n)), 0, n - 1) for u, n in ((u0, n0), (u1, n1), (u2, n2))]
        return (i[0] * n1 + i[1]) * n2 + i[2]

    def pdf(self, u0: mi.Float, u1: mi.Float, u2: mi.Float) -> mi.Float:
        """g(u): the density per unit volume of [0, 1)^3."""
        return dr.gather(mi.Float, self.density, self.cell(u0, u1, u2))

    def pdf_marginal(self, u0: mi.Float) -> mi.Float:
        """g0(u0): the marginal density of u0."""
        n0 = self.shape[0]
        return dr.gather(mi.Float, self.marginal_density, dr.clip(mi.UInt32(dr.floor(u0 * n0)), 0, n0 - 1))


def accumulate(u: tuple[mi.Float, mi.Float, mi.Float], weight: mi.Float, shape: tuple = GRID) -> np.ndarray:
    """Cell weights: the sum of ``weight`` over the samples whose u = (u0, u1, u2)
    falls in each cell (summed on the device: one small array comes back)."""
    n0, n1, n2 = shape
    i = [dr.clip(mi.UInt32(dr.floor(x * n)), 0, n - 1) for x, n in zip(u, shape)]
    cells = dr.zeros(mi.Float, n0 * n1 * n2)
    dr.scatter_reduce(dr.ReduceOp.Add, cells, weight, (i[0] * n1 + i[1]) * n2 + i[2], dr.isfinite(weight))
    return np.array(cells, dtype=np.float64).reshape(shape)


class RunningGrid:
    """Cell weights learned over calls: ``seen`` segments per pixel so far."""

    def __init__(self, shape: tuple = GRID) -> None:
        self.weights = np.zeros(shape)
        self.seen = 0.0
        self._grid: GuideGrid | None = None

    def add(self, weights: np.ndarray, per_pixel: float) -> None:
        """Fold in one batch's cell weights (each batch estimates the cells' integrals)."""
        λ = max(per_pixel / (self.seen + per_pixel), RECENT)
        self.weights = (1 - λ) * self.weights + λ * weights
        self.seen += per_pixel
        self._grid = None

    def grid(self) -> GuideGrid:
        if self._grid is None:
            self._grid = GuideGrid(self.weights)
        return self._grid


_GRIDS: dict[tuple, RunningGrid] = {}


def running_grid(integrator: mi.Integrator, scene: mi.Scene, edge_count: int, *settings) -> RunningGrid:
    """The running grid of this integrator, scene, edge count and settings (created empty)."""
    # Object ids: a scene created at a freed one's address with the same edge
    # count inherits its grid, a poor guide at worst (estimates stay unbiased).
    key = (id(integrator), id(scene), edge_count, *settings)
    if key not in _GRIDS:
        if len(_GRIDS) > 16:
            _GRIDS.clear()
        _GRIDS[key] = RunningGrid()
    return _GRIDS[key]


def forget(integrator: mi.Integrator | None = None) -> None:
    """Drop the learned grids (of one integrator, or all): the next guided
    calls learn again from uniform segments."""
    for key in [k for k in _GRIDS if integrator is None or k[0] == id(integrator)]:
        del _GRIDS[key]
