r"""An interior integrator plus a list of boundary terms.

.. math::

    \partial_\pi I = \underbrace{\int \partial_\pi f\, d\mu}_{\text{interior}}
      + \sum_{\text{terms}} \text{boundary term}

:func:`with_boundary_terms` extends an interior integrator (a
``PbdrIntegrator`` whose ``sample`` does path replay): the interior term
is that integrator's own ``render_forward`` / ``render_backward``, and
each :class:`~pbdr.integrators.boundary.term.BoundaryTerm` in
``term_types`` adds its samples through the one splat. The primal image
comes from the interior integrator alone.

A composite integrator is ``class X(with_boundary_terms(Interior))`` with
``term_types = (TermA, TermB, ...)``. Plugin properties it adds to the
interior integrator's:

- ``interior`` (bool, default true): the interior term on or off;
- ``spp_interior`` (int, default -1): its samples per pixel (-1: the
  ``spp`` of the call, else the sensor's sampler);
- per term ``<name>`` (bool, default true) and ``spp_<name>`` (int,
  default -1: the interior spp divided by the term's ``spp_divisor``),
  and the term's own settings.

A term runs only where it :meth:`~BoundaryTerm.applies` (for the edge
terms: some mesh's vertex positions carry gradients), so derivatives of
materials and lights cost what the interior term costs.
"""
from __future__ import annotations

from typing import Any, ClassVar

import drjit as dr
import mitsuba as mi

from pbdr.integrators.base import PbdrIntegrator
from pbdr.integrators.boundary.term import BoundaryTerm, splat_backward, splat_forward


def sensor_of(scene: mi.Scene, sensor: int | mi.Sensor) -> mi.Sensor:
    """The sensor a ``render_forward/backward`` call names (an index or the sensor)."""
    return scene.sensors()[sensor] if isinstance(sensor, int) else sensor


def with_boundary_terms(interior: type[PbdrIntegrator]) -> type[PbdrIntegrator]:
    """``interior`` (an integrator whose ``render_forward/backward`` is the
    interior term) extended by the boundary terms its subclass lists in
    ``term_types``. (A class factory, not a mixin: Mitsuba's integrator
    classes take a single base.)"""

    class Composite(interior):
        boundary_terms = True
        #: The boundary terms, in the order they are evaluated.
        term_types: ClassVar[tuple[type[BoundaryTerm], ...]] = ()

        def __init__(self, props: mi.Properties) -> None:
            super().__init__(props)
            self.use_interior = bool(props.get("interior", True))
            self.spp_interior = int(props.get("spp_interior", -1))
            self.terms = [term_type(props) for term_type in self.term_types]

        def interior_spp(self, sensor: mi.Sensor, spp: int) -> int:
            """The interior term's samples per pixel for a call with ``spp``."""
            base = spp if spp > 0 else sensor.sampler().sample_count()
            return self.spp_interior if self.spp_interior > 0 else base

        def active_terms(self, scene: mi.Scene) -> list[BoundaryTerm]:
            """The terms that are on and can be non-zero for this scene's parameters."""
            return [t for t in self.terms if t.enabled and t.applies(scene)]

        def render_forward(self, scene: mi.Scene, params: Any, sensor: int | mi.Sensor = 0,
                           seed: mi.UInt32 = 0, spp: int = 0) -> mi.TensorXf:
            """dI/dπ: the interior term's image plus every active term's splat."""
            sensor = sensor_of(scene, sensor)
            spp_i = self.interior_spp(sensor, spp)
            film = sensor.film()
            if self.use_interior:
                image = super().render_forward(scene, params, sensor, seed, spp_i)
            else:
                size = film.crop_size()
                image = dr.zeros(mi.TensorXf, (int(size[1]), int(size[0]), film.base_channels_count()))
            for term in self.active_terms(scene):
                samples = term.samples(scene, sensor, self, mi.UInt32(seed), term.sample_count(sensor, spp_i))
                image = image + splat_forward(film, samples)
            return image

        def render_backward(self, scene: mi.Scene, params: Any, grad_in: mi.TensorXf,
                            sensor: int | mi.Sensor = 0, seed: mi.UInt32 = 0, spp: int = 0) -> None:
            """Reverse mode of ``render_forward``: every term accumulates into the parameters' gradients."""
            sensor = sensor_of(scene, sensor)
            spp_i = self.interior_spp(sensor, spp)
            if self.use_interior:
                super().render_backward(scene, params, grad_in, sensor, seed, spp_i)
            for term in self.active_terms(scene):
                samples = term.samples(scene, sensor, self, mi.UInt32(seed), term.sample_count(sensor, spp_i))
                splat_backward(sensor.film(), samples, grad_in)
            dr.eval()

        def to_string(self) -> str:
            parts = [self.settings_string(), f"interior={self.use_interior}, spp_interior={self.spp_interior}",
                     *(t.describe() for t in self.terms)]
            return f"{type(self).__name__}[{', '.join(parts)}]"

    Composite.__name__ = Composite.__qualname__ = f"{interior.__name__}WithBoundaryTerms"
    return Composite
