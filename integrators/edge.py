r"""
pbdr_edge: interior term + boundary terms by explicit edge sampling
===================================================================

The derivative of a pixel is the sum of an interior and a boundary term
(Li, Aittala, Durand, Lehtinen 2018, "Differentiable Monte Carlo Ray
Tracing through Edge Sampling"):

.. math::

    \partial_\pi I = \underbrace{\int \partial_\pi f\, d\mu}_{\texttt{pbdr\_interior}}
      + \underbrace{\int_{\text{primary edges}} \Delta L\; v_n\, d\ell}_{\text{primary\_edges.py}}
      + \underbrace{\sum_k \int_{\text{edges seen from } x_k} \Delta f\; v_n\, d\ell}
                   _{\text{secondary\_edges.py}}

- the interior term is ``pbdr_interior``'s path replay (camera rays fixed,
  visibility detached);
- primary edges are mesh silhouettes, open-mesh boundaries and shading
  creases seen from the camera, sampled on screen in proportion to
  projected length (``integrators/boundary/primary_edges.py``), together
  with the shading terminators of smooth-shaded meshes
  (``integrators/boundary/primary_terminators.py``);
- secondary edges are silhouettes seen from shading points (shadow and
  indirect-occlusion boundaries), Li et al.'s 3D edge measure at every path
  vertex (``integrators/boundary/secondary_edges.py``), together with the
  shading terminators of smooth-shaded meshes seen from those points
  (``integrators/boundary/secondary_terminators.py``).

Each term has its own sample count and seed; the primal image comes from
the interior pass alone. The boundary terms run only when some mesh's
vertex positions carry derivatives (shape, ``to_world`` or area-light
parameters); for materials and emission they are zero. Forward mode sums
derivative images; reverse mode lets every term accumulate into the
parameters' gradients.

Plugin parameters
-----------------
- ``max_depth``, ``rr_depth``, ``hide_emitters``: as ``pbdr_interior``.
- ``spp_interior`` (int, default -1): samples per pixel of the interior
  term; -1 uses the ``spp`` of the call (or the sensor's sampler).
- ``spp_primary`` (int, default -1): primary-edge samples per pixel of the
  image (``spp_primary · W · H`` edge points, each traced on both sides);
  -1 uses a quarter of the interior spp.
- ``spp_secondary`` (int, default -1): camera paths per pixel for the
  secondary edges (one edge sample at each of their vertices, two side
  paths each); -1 uses an eighth of the interior spp.

  The defaults follow the variance-optimal split n_i ∝ sqrt(σ_i² / c_i)
  (σ_i² the variance, c_i the cost of one sample of term i) measured on the
  shadow and Cornell-box scenes: the interior term is the noisiest per
  unit of time, by a wide margin (``scripts/bench_edge.py --terms``).
- ``edge_sampling`` (string, default ``importance``): how a secondary edge
  and a point on it are chosen at a shading point: ``importance`` (per
  point, geometry and emitter-occlusion strategies with MIS, see
  ``boundary/edge_sampling.py``), or the baselines ``uniform`` and
  ``length`` (one scene-wide distribution, point uniform on the edge).
- ``edge_candidates`` (int, default 128): the ``importance`` scheme weighs
  at most this many edges at each shading point: of all edges at a point on
  a moving mesh, of the moving meshes' edges elsewhere (a random strided
  subset when there are more; 0 weighs all), see ``boundary/edge_sampling.py``.
- ``terminator_candidates`` (int, default 32): the same for the faces of
  smooth-shaded meshes that may hold a terminator arc seen from a shading
  point (``boundary/secondary_terminators.py``).
- ``terminator_fraction`` (float in (0, 1], default 0.25): the share of path
  vertices, drawn per lane, that take a terminator sample (weighted by its
  inverse). The term holds ~10⁻³ of the secondary variance but costs as
  much as a third of it: at 1/4 the secondary term of the smooth pair and
  icosphere took 16% less time for 1-6% more block variance.
- ``primary``, ``secondary`` (bool, default true): switch the boundary
  terms on or off; ``interior`` (bool, default true) the interior term
  (to measure one term's noise alone).
"""
from __future__ import annotations

from typing import Any

import drjit as dr
import mitsuba as mi

from integrators.interior import InteriorIntegrator
from integrators.boundary import boundary_sample_count, moving_meshes, sensor_of
from integrators.boundary.primary_edges import render_primary_backward, render_primary_forward
from integrators.boundary.edge_sampling import SamplingOptions
from integrators.boundary.secondary_edges import render_secondary_backward, render_secondary_forward


class EdgeIntegrator(InteriorIntegrator):
    __doc__ = __doc__
    plugin_name = "pbdr_edge"
    boundary_terms = True
    samples_terminators = True      # of smooth-shaded meshes (pbdr.scene.smooth_shading_warning)

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        self.spp_interior = int(props.get("spp_interior", -1))
        self.spp_primary = int(props.get("spp_primary", -1))
        self.spp_secondary = int(props.get("spp_secondary", -1))
        self.use_interior = bool(props.get("interior", True))
        self.use_primary = bool(props.get("primary", True))
        self.use_secondary = bool(props.get("secondary", True))
        self.edge_sampling = SamplingOptions.of(props)

    # ---- sample counts ----
    def counts(self, sensor: mi.Sensor, spp: int) -> tuple[int, int, int]:
        """(interior spp, primary edge samples, secondary camera paths) for a call with ``spp``."""
        base = spp if spp > 0 else sensor.sampler().sample_count()
        interior = self.spp_interior if self.spp_interior > 0 else base
        return (interior, boundary_sample_count(sensor, self.spp_primary, interior, 4),
                boundary_sample_count(sensor, self.spp_secondary, interior, 8))

    def render_forward(self, scene: mi.Scene, params: Any, sensor: int | mi.Sensor = 0,
                       seed: mi.UInt32 = 0, spp: int = 0) -> mi.TensorXf:
        sensor = sensor_of(scene, sensor)
        spp_i, n_primary, n_secondary = self.counts(sensor, spp)
        if self.use_interior:
            image = super().render_forward(scene, params, sensor, seed, spp_i)
        else:
            size, nch = sensor.film().crop_size(), sensor.film().base_channels_count()
            image = dr.zeros(mi.TensorXf, (int(size[1]), int(size[0]), nch))
        moving = bool(moving_meshes(scene))   # else the boundary terms are zero (material, light, ...)
        if self.use_primary and moving:
            image = image + render_primary_forward(scene, sensor, self, mi.UInt32(seed), n_primary)
        if self.use_secondary and moving:
            image = image + render_secondary_forward(scene, sensor, self, mi.UInt32(seed), n_secondary,
                                                     self.edge_sampling)
        return image

    def render_backward(self, scene: mi.Scene, params: Any, grad_in: mi.TensorXf,
                        sensor: int | mi.Sensor = 0, seed: mi.UInt32 = 0, spp: int = 0) -> None:
        sensor = sensor_of(scene, sensor)
        spp_i, n_primary, n_secondary = self.counts(sensor, spp)
        if self.use_interior:
            super().render_backward(scene, params, grad_in, sensor, seed, spp_i)
        moving = bool(moving_meshes(scene))
        if self.use_primary and moving:
            render_primary_backward(scene, sensor, self, grad_in, mi.UInt32(seed), n_primary)
        if self.use_secondary and moving:
            render_secondary_backward(scene, sensor, self, grad_in, mi.UInt32(seed), n_secondary,
                                      self.edge_sampling)
        dr.eval()

    def to_string(self) -> str:
        return (f"EdgeIntegrator[max_depth={self.max_depth}, spp_interior={self.spp_interior}, "
                f"spp_primary={self.spp_primary}, spp_secondary={self.spp_secondary}, "
                f"interior={self.use_interior}, primary={self.use_primary}, secondary={self.use_secondary}]")
