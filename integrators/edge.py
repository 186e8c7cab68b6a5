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

The class is ``with_boundary_terms(InteriorIntegrator)``
(``integrators/composite.py``) with the terms ``PrimaryEdges`` and
``SecondaryEdges`` (``BoundaryTerm`` subclasses, ``boundary/term.py``).
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
  (σ_i² the variance, c_i the cost of one sample of term i): the interior
  term is the noisiest per unit of time.
- ``edge_sampling`` (string, default ``importance``): how a secondary edge
  and a point on it are chosen at a shading point: ``importance`` (per
  point, geometry and emitter-occlusion strategies with MIS, see
  ``boundary/edge_sampling.py``), or the baseline ``uniform`` (an edge
  uniformly from all edges, a point uniformly on it).
- ``edge_candidates`` (int, default 2048): the ``importance`` scheme weighs
  at most this many edges at each shading point: of all edges at a point on
  a moving mesh, of the moving meshes' edges elsewhere (a random strided
  subset when there are more; 0 weighs all), see ``boundary/edge_sampling.py``.
- ``terminator_candidates`` (int, default 32): the same for the faces of
  smooth-shaded meshes that may hold a terminator arc seen from a shading
  point (``boundary/secondary_terminators.py``).
- ``terminator_fraction`` (float in (0, 1], default 0.25): the share of path
  vertices, drawn per lane, that take a terminator sample (weighted by its
  inverse): the terminator term adds little variance but much of the
  secondary term's cost.
- ``first_bounce`` (string, default ``auto``): how the interior term holds
  the vertex after the camera vertex as the camera vertex moves: fixed in
  space (``area``), or in solid angle from it (``direction``: its ray
  keeps its direction and starts at the moving camera vertex; the next
  event's emitter point is reached in the sample's direction), or in solid
  angle where the camera vertex is not on a smooth-shaded mesh (``auto``).
  Held in space, the derivative of the Jacobian |cos θ_y| / r² grows as 1 /
  the height above a surface the object rests on, and at a contact the
  interior term is heavy-tailed; in solid angle it is not. The secondary
  term follows: both sides of an edge seen from the camera vertex move
  with it, v = n_h·(ṁ - ṗ) / |m - p|. On smooth-shaded meshes ``direction``
  is noisier, hence ``auto``.
- ``solid_angle_after`` (string, default ``moving``): which vertices hold
  the next one in solid angle where ``first_bounce`` allows it: the camera
  vertex only (``camera``), or every vertex on a moving mesh (``moving``):
  a contact seen through a bounce (a box resting on the floor, seen in a
  wall's reflection) is then not heavy-tailed either. The vertex after one
  held so moves with it; ``solid_angle_chain`` (int, default 1) is how many
  vertices in a row may hold (a vertex that moves with its predecessor may
  hold the next one too, up to that many; path replay recomputes the
  chain). Other vertices are held in space.
- ``primary``, ``secondary`` (bool, default true): switch the boundary
  terms on or off; ``interior`` (bool, default true) the interior term
  (diagnostic switches, to measure one term alone).
"""
from __future__ import annotations

import mitsuba as mi

from pbdr.integrators.boundary.primary_edges import PrimaryEdges
from pbdr.integrators.boundary.secondary_edges import SecondaryEdges
from pbdr.integrators.composite import with_boundary_terms
from pbdr.integrators.interior import InteriorIntegrator, read_first_bounce, read_solid_angle_after


class EdgeIntegrator(with_boundary_terms(InteriorIntegrator)):
    __doc__ = __doc__
    plugin_name = "pbdr_edge"
    samples_terminators = True
    term_types = (PrimaryEdges, SecondaryEdges)

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        self.first_bounce = read_first_bounce(props, "auto")
        self.solid_angle_after = read_solid_angle_after(props, "moving")
        self.solid_angle_chain = int(props.get("solid_angle_chain", 1))
        if self.solid_angle_chain < 1:
            raise ValueError(f"solid_angle_chain must be at least 1, got {self.solid_angle_chain}")
