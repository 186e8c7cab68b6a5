r"""
The boundary-term interface and the one splat
=============================================

A boundary term of the derivative of pixel :math:`p` is an integral over
some boundary (edges seen from the camera, edges seen from path vertices,
boundary segments in path space, ...) whose Monte Carlo estimate is a sum
over samples :math:`j` of

.. math::

    \partial_\pi I_p \mathrel{+}= \sum_j \frac{k_p(x_j)}{\int k}
        \sum_t A_{j,t}\, \partial_\pi q_{j,t},

with :math:`x_j` the sample's film position, :math:`k_p` the pixel filter,
:math:`A` a detached weight (a spectrum: radiance jump, throughput, 1/pdf)
and :math:`q` a scalar attached to the scene parameters whose derivative
is the motion of the boundary (e.g. the normal speed :math:`n \cdot x` of
an edge point). A term is a :class:`BoundaryTerm` that yields
:class:`BoundarySamples`; :func:`splat_forward` turns them into a
derivative image (forward mode: :math:`\partial q` read with
``dr.forward_to``) and :func:`splat_backward` into parameter gradients
(reverse mode: :math:`\sum_p \delta I_p k_p A` propagated through
:math:`q` with ``dr.backward_from``). The splat handles every pixel
filter and the film's border (``filter_footprint``); the terms never touch
the film.

A composite integrator (``integrators/composite.py``) owns a list of terms
and runs each with its own sample count, switch and settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import drjit as dr
import mitsuba as mi
import numpy as np

from pbdr.geometry.moving import moving_meshes

UNBOUNDED_DEPTH = 8     # camera-path vertices a term walks when max_depth is -1 (unbounded)


def depth_limit(integrator: mi.Integrator) -> int:
    """The integrator's ``max_depth``, -1 when unbounded (Mitsuba keeps the
    -1 of a scene file as 2^32 - 1)."""
    depth = int(integrator.max_depth)
    return -1 if depth < 0 or depth >= 0xFFFFFFFF else depth


def walk_depth(integrator: mi.Integrator) -> int:
    """How many path segments a boundary term's camera paths span: the
    integrator's ``max_depth``, or ``UNBOUNDED_DEPTH`` when that is unbounded."""
    depth = depth_limit(integrator)
    return depth if depth > 0 else UNBOUNDED_DEPTH


@dataclass
class BoundarySamples:
    """A batch of boundary samples: each lane adds ``Σ_t A_t · ∂q_t`` at film
    position ``pos`` (pixels; its derivative is not used) where ``active``."""

    pos: mi.Point2f
    terms: list[tuple[mi.Spectrum, mi.Float]]   # (A detached, q attached to the parameters)
    active: mi.Bool


@dataclass(frozen=True)
class Setting:
    """A plugin property of a boundary term: its name, default and meaning,
    and a check that returns an error message for a bad value (or None)."""

    name: str
    default: bool | int | float | str
    doc: str
    check: Callable[[Any], str | None] | None = None

    def read(self, props: mi.Properties) -> Any:
        """The property's value in ``props`` (the default when absent), checked."""
        value = type(self.default)(props.get(self.name, self.default))
        message = self.check(value) if self.check is not None else None
        if message:
            raise ValueError(f"{self.name} {message}, got {value}")
        return value


class BoundaryTerm:
    """One boundary term of a composite integrator.

    A subclass sets ``name`` (the plugin switch ``<name>`` and the sample
    count ``spp_<name>`` are then properties of the integrator),
    ``spp_divisor`` (by default a term draws ``spp // spp_divisor`` samples
    per pixel of the call's interior spp), its own ``settings``, and
    implements :meth:`samples`. :meth:`applies` says whether the term can be
    non-zero for the parameters being differentiated (default: some mesh
    moves).
    """

    name: ClassVar[str]
    spp_divisor: ClassVar[int] = 4
    settings: ClassVar[tuple[Setting, ...]] = ()

    def __init__(self, props: mi.Properties) -> None:
        self.enabled = bool(props.get(self.name, True))
        self.spp = int(props.get(f"spp_{self.name}", -1))
        self.values = {s.name: s.read(props) for s in self.settings}

    @classmethod
    def properties(cls) -> list[Setting]:
        """Every plugin property the term reads: its switch, sample count and settings."""
        return [Setting(cls.name, True, f"add the {cls.name} term"),
                Setting(f"spp_{cls.name}", -1, f"samples per pixel; -1: the interior spp / {cls.spp_divisor}"),
                *cls.settings]

    def applies(self, scene: mi.Scene) -> bool:
        """Whether the term can be non-zero (a cheap flag test, no read-back)."""
        return bool(moving_meshes(scene))

    def sample_count(self, sensor: mi.Sensor, spp_interior: int) -> int:
        """Samples for the whole image: ``spp_<name>`` per pixel when set
        (> 0), else ``spp_interior // spp_divisor`` (at least 1)."""
        n = self.spp if self.spp > 0 else max(1, spp_interior // self.spp_divisor)
        size = sensor.film().crop_size()
        return n * int(size[0]) * int(size[1])

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterable[BoundarySamples]:
        """The term's samples for one call: ``count`` of them (in one or more
        batches), drawn from streams seeded by ``seed``; ``integrator`` traces
        the paths a sample needs (its primal ``sample``)."""
        raise NotImplementedError

    def describe(self) -> str:
        """``name=..., spp_name=..., setting=...`` for the integrator's ``to_string``."""
        items = {self.name: self.enabled, f"spp_{self.name}": self.spp, **self.values}
        return ", ".join(f"{k}={v}" for k, v in items.items())


@dataclass
class FilterFootprint:
    """How a sample at a film position weighs into the pixels around it."""

    rfilter: mi.ReconstructionFilter
    taps: int                   # pixels per axis a footprint can touch
    lo: float                   # the sampled domain [lo, hi_x] x [lo, hi_y] of the film
    hi: tuple[float, float]
    norm: tuple[mi.Float, mi.Float] | float     # ∫ of the 1D profile over the domain, per column and row


_FOOTPRINTS: dict[int, tuple[tuple, FilterFootprint]] = {}


def filter_footprint(film: mi.Film) -> FilterFootprint:
    """A pixel is Σ k L / Σ k over the camera samples in its footprint, and
    the film samples [0, W] x [0, H], widened by the filter's border with
    ``sample_border``. So a sample weighs k_p(x) / ∫_domain k_p, where the
    integral is the filter's own except for pixels whose footprint the
    domain cuts (near the edges of a film without ``sample_border``)."""
    rfilter = film.rfilter()
    size = tuple(int(v) for v in film.crop_size())
    key = (rfilter, size, bool(film.sample_border()))
    # Keyed by the film; the entry holds its filter, so a new film at a recycled id has another one.
    cached = _FOOTPRINTS.get(id(film))
    if cached is not None and cached[0] == key:
        return cached[1]
    radius = float(rfilter.radius())
    t = (np.arange(4096) + 0.5) / 4096 * 2 * radius - radius
    profile = np.array(rfilter.eval(mi.Float(t)), dtype=np.float64) * (2 * radius / 4096)
    cdf = np.concatenate([[0.0], np.cumsum(profile)])
    taps = max(1, int(np.ceil(2 * radius - 1e-9)))
    if film.sample_border() or radius <= 0.5:
        border = float(rfilter.border_size()) if film.sample_border() else 0.0
        norm: tuple[mi.Float, mi.Float] | float = float(cdf[-1])
    else:
        border = 0.0
        def cut(n: int) -> mi.Float:
            c = np.arange(n) + 0.5
            a, b = np.maximum(-c, -radius), np.minimum(n - c, radius)
            at = lambda u: np.interp(u, np.linspace(-radius, radius, 4097), cdf)   # noqa: E731
            return mi.Float((at(b) - at(a)).astype(np.float32))
        norm = (cut(size[0]), cut(size[1]))
    fp = FilterFootprint(rfilter, taps, -border, (size[0] + border, size[1] + border), norm)
    _FOOTPRINTS[id(film)] = (key, fp)
    return fp



def channels(value: mi.Spectrum) -> list[mi.Float]:
    v = mi.unpolarized_spectrum(value)
    return [v[k] for k in range(3)] if mi.is_rgb else [v[0]]


def footprint(film: mi.Film, x: mi.Point2f):
    """Yield (flat pixel index, filter weight / ∫k, valid) for every pixel whose
    footprint holds x (``filter_footprint``; nothing for x outside the sampled domain)."""
    fp = filter_footprint(film)
    size = film.crop_size()
    radius = float(fp.rfilter.radius())
    x = dr.detach(x)
    sampled = (x.x >= fp.lo) & (x.y >= fp.lo) & (x.x <= fp.hi[0]) & (x.y <= fp.hi[1])
    lo = mi.Vector2i(dr.floor(x - radius - 0.5)) + 1
    for dy in range(fp.taps):
        for dx in range(fp.taps):
            pix = lo + mi.Vector2i(dx, dy)
            c = mi.Vector2f(pix) + 0.5
            valid = sampled & (pix.x >= 0) & (pix.y >= 0) & (pix.x < int(size[0])) & (pix.y < int(size[1]))
            if isinstance(fp.norm, float):
                norm = fp.norm * fp.norm
            else:
                norm = dr.gather(mi.Float, fp.norm[0], pix.x, valid) * dr.gather(mi.Float, fp.norm[1], pix.y, valid)
            w = fp.rfilter.eval(x.x - c.x) * fp.rfilter.eval(x.y - c.y) / norm
            valid &= w != 0
            yield mi.UInt32(dr.select(valid, pix.y * int(size[0]) + pix.x, 0)), w, valid


def splat_forward(film: mi.Film, batches: Iterable[BoundarySamples]) -> mi.TensorXf:
    """Forward mode: the term's derivative image (the parameters' tangents
    already set, e.g. by ``dr.forward_from``)."""
    size = film.crop_size()
    nch = film.base_channels_count()
    out = dr.zeros(mi.Float, int(size[0]) * int(size[1]) * nch)
    for smp in batches:
        qs = [q for _, q in smp.terms]
        dr.forward_to(*qs, flags=dr.ADFlag.ClearInterior)  # keep the parameters' tangents
        dq = [dr.grad(q) for q in qs]
        dr.eval(dq)     # once: the splat below would replay the AD graph per channel
        with dr.suspend_grad():
            value = sum((A * d for (A, _), d in zip(smp.terms, dq)), mi.Spectrum(0))
            for pixel, w, valid in footprint(film, smp.pos):
                for c, v in enumerate(channels(value)):
                    dr.scatter_reduce(dr.ReduceOp.Add, out, v * w, pixel * nch + c, valid & smp.active)
    return mi.TensorXf(out, (int(size[1]), int(size[0]), nch))


def splat_backward(film: mi.Film, batches: Iterable[BoundarySamples], grad_in: mi.TensorXf) -> None:
    """Reverse mode: accumulate Σ_p δI_p · (the term's part of dI_p/dπ) into
    the parameters' gradients (``grad_in`` = δI)."""
    nch = film.base_channels_count()
    for smp in batches:
        with dr.suspend_grad():
            weights = [mi.Float(0) for _ in smp.terms]
            per_channel = [channels(A) for A, _ in smp.terms]
            for pixel, w, valid in footprint(film, smp.pos):
                for c in range(len(per_channel[0])):
                    gi = dr.gather(mi.Float, grad_in.array, pixel * nch + c, valid & smp.active) * w
                    for t, A_c in enumerate(per_channel):
                        weights[t] += dr.select(valid & smp.active, A_c[c] * gi, 0.0)
        # Keep the graph up to the parameters: other terms propagate through it too.
        dr.backward_from(sum((wt * q for wt, (_, q) in zip(weights, smp.terms)), mi.Float(0)),
                         flags=dr.ADFlag.ClearInterior)
