"""Scoring one integrator on one case against its finite-difference reference.

The comparison itself is :func:`pbdr.validate.compare` (the numbers ``pbdr
check`` prints): the block error ||B_G - B_F|| / ||B_F|| over 8x8-pixel block
sums, the block error that the noise of both estimates alone would give, the
z of the image totals and the block χ². The benchmark adds what it takes to
rank estimators:

- ``rel_se``: the standard error of the derivative's total over its seeds,
  relative to |FD total|;
- ``block_variance``: the variance of *one* gradient's block sums (summed over
  blocks, relative to ||B_F||²), so that it does not depend on the number of
  seeds a run used;
- ``efficiency`` = 1 / (block_variance x seconds per gradient): 4x the
  efficiency reaches the same noise in a quarter of the time.

Integrators that only have reverse mode (Mitsuba's ``prbvolpath``) give one
number per seed, the total d(Σ I)/dθ: they are scored on totals only (z,
``rel_se``, ``total_efficiency``), with no block error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..validate import Estimate, compare

OK, UNSUPPORTED, FAILED = "ok", "unsupported", "failed"


@dataclass
class Score:
    """One integrator on one case. ``status`` is ``ok``, ``unsupported`` or
    ``failed`` (then ``reason`` says why, in one line, and the numbers are None)."""

    status: str
    reason: str = ""
    mode: str = "forward"               # "forward": images; "reverse": totals only
    seconds: float | None = None        # per gradient, after a warm-up gradient
    seeds: int = 0
    total: float | None = None
    total_se: float | None = None
    fd_total: float | None = None
    fd_se: float | None = None
    z: float | None = None
    rel_error: float | None = None
    rel_se: float | None = None
    block_error: float | None = None
    block_noise: float | None = None
    block_chi2: float | None = None
    block_variance: float | None = None
    efficiency: float | None = None
    total_efficiency: float | None = None
    passed: bool | None = None
    warning: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The score as plain JSON values (non-finite numbers as None)."""
        out = asdict(self)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def block_variance(grad: Estimate, fd: Estimate) -> float:
    """Σ over blocks of the variance of one gradient's 8x8 block sums (over
    its seeds, ddof 1), divided by ||B_F||² (the FD mean's block sums)."""
    if len(grad.samples) < 2:
        raise ValueError("block variance needs at least two seeds")
    bg, bf = grad.blocks(), fd.blocks()
    norm2 = float(np.sum(bf.mean(axis=0) ** 2))
    return float(bg.var(axis=0, ddof=1).sum()) / max(norm2, 1e-24)


def total_variance(totals: np.ndarray, fd: Estimate) -> float:
    """The variance of one gradient's total (over seeds), divided by ||B_F||²
    (so that it is comparable with :func:`block_variance`, and finite where the
    FD total is 0)."""
    norm2 = float(np.sum(fd.blocks().mean(axis=0) ** 2))
    return float(np.var(np.asarray(totals, dtype=np.float64), ddof=1)) / max(norm2, 1e-24)


def score(fd: Estimate, seconds: float, grad: Estimate | None = None,
          totals: np.ndarray | None = None, z_tol: float = 4.0, chi2_tol: float = 3.0) -> Score:
    """Score derivative images ``grad`` (K x H x W x C, forward mode) or
    reverse-mode ``totals`` (K numbers) against the reference ``fd``;
    ``seconds`` per gradient."""
    if (grad is None) == (totals is None):
        raise ValueError("give derivative images or totals, not both")
    if grad is not None:
        report = compare(grad, fd, z_tol, chi2_tol)
        var = block_variance(grad, fd)
        var_total = total_variance(grad.totals(), fd)
        return Score(
            status=OK, mode="forward", seconds=seconds, seeds=len(grad.samples),
            total=report.grad_total, total_se=report.grad_se, fd_total=report.fd_total, fd_se=report.fd_se,
            z=report.z, rel_error=report.rel_error, rel_se=report.grad_se / max(abs(report.fd_total), 1e-12),
            block_error=report.block_error, block_noise=report.block_noise, block_chi2=report.block_chi2,
            block_variance=var, efficiency=_efficiency(var, seconds),
            total_efficiency=_efficiency(var_total, seconds), passed=report.passed)
    totals = np.asarray(totals, dtype=np.float64)
    as_images = Estimate(totals.reshape(-1, 1, 1, 1))
    fd_totals = Estimate(fd.totals().reshape(-1, 1, 1, 1))
    report = compare(as_images, fd_totals, z_tol, chi2_tol)
    var_total = total_variance(totals, fd)
    return Score(
        status=OK, mode="reverse", seconds=seconds, seeds=len(totals),
        total=report.grad_total, total_se=report.grad_se, fd_total=report.fd_total, fd_se=report.fd_se,
        z=report.z, rel_error=report.rel_error, rel_se=report.grad_se / max(abs(report.fd_total), 1e-12),
        total_efficiency=_efficiency(var_total, seconds), passed=abs(report.z) <= z_tol)


def _efficiency(variance: float, seconds: float) -> float | None:
    """1 / (variance x seconds); None when either is not positive."""
    if not (variance > 0 and seconds > 0):
        return None
    return 1.0 / (variance * seconds)
