"""Finite differences with common random numbers, and the check report.

A derivative estimate is only trusted if it agrees with central finite
differences within their measured noise:

    FD_k = (I(θ=+ε; seed k) - I(θ=-ε; seed k)) / 2ε,    k = 1..K

The same seed on both sides (common random numbers) cancels most of the
Monte Carlo noise. Standard errors come from the spread over seeds, for FD
and for the derivative alike, and the verdict is a z-test on the totals
|G - F| <= z_tol · sqrt(se_G² + se_F²), plus the same test on 8x8-pixel
block sums (a chi-square per block) so that a derivative with the right sum
but the wrong place fails too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mitsuba as mi
import numpy as np
from tqdm import tqdm

from .errors import PbdrError, show_progress
from .perturb import Perturbation
from .render import check_spp, derivative, opaque_seed, seeds_for, to_numpy
from .scene import has_media, make_integrator, renders_media

BLOCK = 8


@dataclass
class Estimate:
    """K independent derivative images (one per seed) and their statistics."""

    samples: np.ndarray                     # K x H x W x C
    # Per-pixel standard deviation of one sample's float rounding (H x W x C),
    # where known: finite differences of images that agree to the last bit
    # differ by rounding alone, which the spread over K seeds can miss.
    rounding: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        """The mean image over seeds."""
        return self.samples.mean(axis=0)

    @property
    def stderr(self) -> np.ndarray:
        """The per-pixel standard error of the mean (zeros for one seed)."""
        k = len(self.samples)
        return self.samples.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(self.mean)

    def totals(self) -> np.ndarray:
        """The image sum of each seed (float64)."""
        return self.samples.reshape(len(self.samples), -1).sum(axis=1, dtype=np.float64)

    @property
    def total(self) -> float:
        """The mean over seeds of the image sum."""
        return float(self.totals().mean())

    @property
    def total_se(self) -> float:
        """The standard error of :attr:`total` (0 for one seed)."""
        t = self.totals()
        return float(t.std(ddof=1) / np.sqrt(len(t))) if len(t) > 1 else 0.0

    def blocks(self, size: int = BLOCK) -> np.ndarray:
        """K x (H/size) x (W/size) x C block sums (edge blocks may be partial)."""
        return block_sums(self.samples, size)

    def block_rounding_var(self, size: int = BLOCK) -> np.ndarray:
        """The variance that rounding adds to the mean of each block sum over
        the K seeds, zeros where unknown. Not divided by K: renders of the
        same values in the same thread layout round alike, seed after seed."""
        if self.rounding is None:
            return np.zeros_like(block_sums(self.samples[:1], size)[0])
        return block_sums(np.square(self.rounding, dtype=np.float64)[None], size)[0]


def block_sums(images: np.ndarray, size: int = BLOCK) -> np.ndarray:
    """K x (H/size) x (W/size) x C block sums of K x H x W x C images (float64;
    edge blocks may be partial)."""
    k, h, w, c = images.shape
    hb, wb = -(-h // size), -(-w // size)
    padded = np.zeros((k, hb * size, wb * size, c), dtype=np.float64)
    padded[:, :h, :w] = images
    return padded.reshape(k, hb, size, wb, size, c).sum(axis=(2, 4))


def fd_integrator(scene: mi.Scene, max_depth: int | None = None,
                  like: mi.Integrator | None = None) -> mi.Integrator:
    """Mitsuba's reference integrator for the scene: ``path``, or ``volpath`` with media.

    With ``like`` (the integrator under test) the reference renders what it
    renders: ``path`` when it ignores media, and its ``max_depth``,
    ``rr_depth`` and ``hide_emitters``.
    """
    volumetric = has_media(scene) and (like is None or renders_media(like))
    return make_integrator(scene, "volpath" if volumetric else "path", max_depth, settings_from=like)


# Finite-difference schemes: the steps θ/ε rendered and their coefficients, dI/dθ ≈ Σ c·I(θ)/ε.
# ``forward`` (second order, Richardson) never steps below θ = 0: for a parameter at the edge of
# its domain, e.g. a grid with empty voxels (density 0) or an albedo of 0.
FD_SCHEMES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "central": ((1.0, -1.0), (0.5, -0.5)),
    "forward": ((0.0, 1.0, 2.0), (-1.5, 2.0, -0.5)),
}


def check_fd_settings(perturbation: Perturbation, eps: float, seeds: int, min_seeds: int = 1,
                      scheme: str = "central") -> None:
    """Refuse a finite-difference step, scheme or seed count before anything
    is rendered: ``eps`` must be positive, finite and (central differences)
    keep the parameter in its domain; a check asks for ``min_seeds = 2``
    seeds, to measure noise."""
    if seeds < min_seeds:
        raise PbdrError(f"a check needs at least {min_seeds} seeds to measure noise, got {seeds}")
    if scheme not in FD_SCHEMES:
        raise PbdrError(f"unknown finite-difference scheme '{scheme}' ({', '.join(FD_SCHEMES)})")
    if not (np.isfinite(eps) and eps > 0):
        raise PbdrError(f"--eps must be a positive finite number, got {eps}")
    if min(FD_SCHEMES[scheme][0]) < 0:
        perturbation.check_step(eps)


def finite_differences(scene: mi.Scene, perturbation: Perturbation, eps: float, spp: int,
                       seeds: int = 8, integrator: mi.Integrator | None = None,
                       first_seed: int = 0, progress: bool = False, sensor: int = 0,
                       scheme: str = "central") -> Estimate:
    """Finite differences with common random numbers over ``seeds`` seeds:
    ``central`` (I(ε) - I(-ε)) / 2ε, or ``forward`` (4 I(ε) - 3 I(0) - I(2ε)) / 2ε
    for parameters at the edge of their domain (both O(ε²))."""
    check_fd_settings(perturbation, eps, seeds, scheme=scheme)
    thetas, coefficients = FD_SCHEMES[scheme]
    check_spp(scene, spp, sensor)
    integrator = integrator or fd_integrator(scene)
    params = mi.traverse(scene)
    out = []
    rounding_var = 0.0
    try:
        for seed in tqdm(seeds_for(seeds, first_seed), desc="finite differences",
                         disable=not show_progress(progress), leave=False):
            estimate = 0.0
            for step, c in zip(thetas, coefficients):
                perturbation.apply(params, step * eps)
                image = to_numpy(mi.render(scene, integrator=integrator, spp=spp, seed=opaque_seed(seed),
                                           sensor=sensor), "finite-difference render")
                estimate = estimate + (c / eps) * image
                rounding_var = rounding_var + np.square(c / eps * render_rounding(image, spp), dtype=np.float64)
            out.append(estimate)
    finally:
        perturbation.restore(params)
    return Estimate(np.stack(out), rounding=np.sqrt(rounding_var / len(out)))


def render_rounding(image: np.ndarray, spp: int) -> np.ndarray:
    """Standard deviation of a float32 pixel's rounding error: its ``spp``
    samples summed in an order the threads choose, a random walk of one unit
    roundoff (2^-24) of the pixel value per addition."""
    return np.abs(image) * (np.sqrt(spp) * 2.0 ** -24)


def derivative_estimate(scene: mi.Scene, perturbation: Perturbation, spp: int, seeds: int = 8,
                        integrator: mi.Integrator | None = None, first_seed: int = 1000,
                        progress: bool = False, sensor: int = 0) -> Estimate:
    """Forward-mode derivative images at ``seeds`` independent seeds."""
    out = [derivative(scene, perturbation, spp, seed, integrator, sensor)
           for seed in tqdm(seeds_for(seeds, first_seed), desc="derivatives",
                            disable=not show_progress(progress), leave=False)]
    return Estimate(np.stack(out))


@dataclass
class CheckReport:
    """How a derivative estimate compares with finite differences."""

    grad_total: float
    grad_se: float
    fd_total: float
    fd_se: float
    block_error: float          # ||B_grad - B_fd|| / ||B_fd|| over 8x8 block sums
    block_noise: float          # the block error that noise alone would give
    block_chi2: float           # mean of (ΔB)² / (se_G² + se_F²) over blocks, ~1 if they agree
    z_tol: float
    chi2_tol: float
    details: dict = field(default_factory=dict)

    @property
    def diff_se(self) -> float:
        """The standard error of the difference of the two totals."""
        return float(np.hypot(self.grad_se, self.fd_se))

    @property
    def z(self) -> float:
        """(derivative total - FD total) / :attr:`diff_se`."""
        diff = self.grad_total - self.fd_total
        if self.diff_se == 0:
            return 0.0 if abs(diff) <= 1e-6 * max(abs(self.fd_total), 1e-12) else float("inf")
        return float(diff / self.diff_se)

    @property
    def rel_error(self) -> float:
        """|derivative total - FD total| / |FD total|."""
        return abs(self.grad_total - self.fd_total) / max(abs(self.fd_total), 1e-8)

    @property
    def passed(self) -> bool:
        """|z| within ``z_tol`` and the block chi-square within ``chi2_tol``."""
        return abs(self.z) <= self.z_tol and self.block_chi2 <= self.chi2_tol

    def summary(self) -> str:
        """The report as ``pbdr check`` prints it, one quantity a line."""
        lines = [
            f"derivative total  {self.grad_total:+.6g} ± {self.grad_se:.3g} (s.e.)",
            f"finite diff total {self.fd_total:+.6g} ± {self.fd_se:.3g} (s.e.)",
            f"relative error    {self.rel_error:.3%}",
            f"z-score           {self.z:+.2f}   (tolerance |z| <= {self.z_tol:g})",
            f"block error 8x8   {self.block_error:.3%}   (noise alone: {self.block_noise:.3%})",
            f"block chi2/dof    {self.block_chi2:.2f}   (tolerance <= {self.chi2_tol:g})",
            f"verdict           {'AGREE' if self.passed else 'DISAGREE'}",
        ]
        return "\n".join(lines)


def compare(grad: Estimate, fd: Estimate, z_tol: float = 4.0, chi2_tol: float = 3.0) -> CheckReport:
    """Compare two estimates of the same derivative image."""
    if grad.samples.shape[1:] != fd.samples.shape[1:]:
        raise PbdrError(f"image shapes differ: {grad.samples.shape[1:]} vs {fd.samples.shape[1:]}")
    bg, bf = grad.blocks(), fd.blocks()
    mg, mf = bg.mean(axis=0), bf.mean(axis=0)
    var_g = bg.var(axis=0, ddof=1) / len(bg) if len(bg) > 1 else np.zeros_like(mg)
    var_f = bf.var(axis=0, ddof=1) / len(bf) if len(bf) > 1 else np.zeros_like(mf)
    norm_f = float(np.linalg.norm(mf))
    denom = max(norm_f, 1e-12)
    rounding = grad.block_rounding_var() + fd.block_rounding_var()
    var = var_g + var_f + rounding
    # Blocks whose spread over seeds is (numerically) nothing or float rounding
    # carry no information: a difference there must be within rounding.
    scale = max(float(np.abs(mf).max(initial=0.0)), float(np.abs(mg).max(initial=0.0)), 1e-30)
    informative = var_g + var_f > np.maximum((1e-6 * scale) ** 2, rounding)
    chi2 = float(np.mean((mg - mf)[informative] ** 2 / var[informative])) if informative.any() else 0.0
    exact_mismatch = (~informative) & (np.abs(mg - mf) > np.maximum(1e-4 * scale, 4 * np.sqrt(rounding)))
    if exact_mismatch.any():
        chi2 = float("inf")
    return CheckReport(
        grad_total=grad.total, grad_se=grad.total_se, fd_total=fd.total, fd_se=fd.total_se,
        block_error=float(np.linalg.norm(mg - mf)) / denom,
        block_noise=float(np.sqrt(var.sum())) / denom,
        block_chi2=chi2, z_tol=z_tol, chi2_tol=chi2_tol,
        details={"blocks": int(mf.size), "seeds_grad": len(grad.samples), "seeds_fd": len(fd.samples)})


@dataclass
class CheckResult:
    """What :func:`check` returns: the comparison and both estimates."""

    report: CheckReport
    grad: Estimate
    fd: Estimate


def check(scene: mi.Scene, perturbation: Perturbation, eps: float, spp: int, fd_spp: int | None = None,
          seeds: int = 8, integrator: mi.Integrator | None = None, z_tol: float = 4.0,
          chi2_tol: float = 3.0, progress: bool = False, sensor: int = 0,
          fd_scheme: str = "central") -> CheckResult:
    """Derivative vs finite differences (``fd_scheme``, see ``FD_SCHEMES``),
    both at ``seeds`` seeds (FD at ``fd_spp``)."""
    check_fd_settings(perturbation, eps, seeds, min_seeds=2, scheme=fd_scheme)   # before the derivatives
    grad = derivative_estimate(scene, perturbation, spp, seeds, integrator, progress=progress,
                               sensor=sensor)
    reference = fd_integrator(scene, like=integrator) if integrator is not None else None
    fd = finite_differences(scene, perturbation, eps, fd_spp or spp, seeds, reference,
                            progress=progress, sensor=sensor, scheme=fd_scheme)
    return CheckResult(compare(grad, fd, z_tol, chi2_tol), grad, fd)
