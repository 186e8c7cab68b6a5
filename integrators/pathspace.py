r"""
pbdr_pathspace: interior term + path-space boundary segments
=============================================================

The derivative of a pixel as in Zhang, Miller, Yan, Gkioulekas, Zhao 2020
("Path-Space Differentiable Rendering"): an interior term and a boundary
term over the discontinuities of the path integrand, the latter split into
the part seen from the camera and boundary segments deeper in the path:

.. math::

    \partial_\pi I = \underbrace{\int \partial_\pi f\, d\mu}_{\texttt{pbdr\_interior}}
      + \underbrace{\int_{\text{primary edges}} \Delta L\; v_n\, d\ell}_{\text{primary\_edges.py}}
      + \underbrace{\int_{\text{edges}} \int_{S^2} W\, f_s\, \Delta L\; v_n \sin\alpha\,
                    d\omega\, d\ell}_{\text{pathspace.py}}

- the interior term is ``pbdr_interior``'s path replay (camera rays fixed,
  visibility detached);
- primary edges are the silhouettes, boundaries and creases of moving
  meshes seen from the camera, shared with ``pbdr_edge``
  (``integrators/boundary/primary_edges.py``);
- the boundary segments are drawn from the edges themselves: a point on an
  edge of a moving mesh and a direction through it; the line finds the
  shading point behind the edge, a particle tracer carries the camera's
  importance to it and the two side paths the radiance jump
  (``integrators/boundary/pathspace.py``). It estimates the same integral as
  ``pbdr_edge``'s secondary edges, sampled from the edge rather than from
  the camera path's vertices;
- the shading terminators of smooth-shaded meshes seen from shading points
  (arcs inside triangles, on no edge) are ``pbdr_edge``'s estimator on
  camera paths of their own (``integrators/boundary/vertex_terminators.py``);
  seen from the camera they are part of the primary term.

The class is ``with_boundary_terms(InteriorIntegrator)``
(``integrators/composite.py``) with the terms ``PrimaryEdges``,
``PathSpaceEdges`` and ``VertexTerminators``.

Plugin parameters
-----------------
- ``max_depth``, ``rr_depth``, ``hide_emitters``: as ``pbdr_interior``.
- ``spp_interior`` (int, default -1): samples per pixel of the interior
  term; -1 uses the ``spp`` of the call (or the sensor's sampler).
- ``spp_primary`` (int, default -1): primary-edge samples per pixel of the
  image; -1 uses a quarter of the interior spp.
- ``spp_pathspace`` (int, default -1): boundary segments per pixel of the
  image (``spp_pathspace · W · H`` edge points and directions, each with a
  camera walk and two side paths); -1 uses the interior spp.
- ``pathspace_directions`` (string, default ``pencil``): the direction
  through an edge point is uniform on the arc of the edge's plane pencil
  where the edge can be a discontinuity (``pencil``), or uniform on the
  sphere (``sphere``, the baseline); either is combined by MIS with
  directions towards the emitter triangles (edges of non-emitters) or
  through the first hits of camera rays (an emitter's own edges).
- ``pathspace_walks`` (int, default 1): camera walks from each segment's
  shading point, each weighted 1/K; they share its side paths.
- ``pathspace_static`` (float, default 0.25): how often a static mesh's
  edge is drawn relative to a moving one of the same measure (static edges
  count where the shading point behind them moves; 0 leaves them out).
- ``pathspace_guiding`` (int, default 16): segments per pixel drawn
  uniformly before a grid over the boundary sample space, learned from the
  term's own samples and refined by every call, guides the rest; 0: no
  guiding. A guided call's result depends on the calls before it (each is
  unbiased); ``pbdr.integrators.boundary.pathspace_guiding.forget`` resets.
- ``spp_terminators`` (int, default -1): camera paths per pixel for the
  terminator arcs seen from their vertices (smooth-shaded meshes only);
  -1 uses a 32nd of the interior spp. ``terminator_candidates`` (int,
  default 32) and ``terminator_fraction`` (float, default 1) as
  ``pbdr_edge``'s.
- ``first_bounce`` (string, default ``auto``): as ``pbdr_edge``'s: the vertex
  after the camera vertex held fixed in space (``area``), in solid angle
  from the moving camera vertex (``direction``), or in solid angle where
  the camera vertex is not on a smooth-shaded mesh (``auto``). The
  path-space term follows: at a segment whose x_a is the camera vertex
  both sides move with it, and x_a one bounce behind a camera vertex
  moves with that vertex (static edges then count behind it too).
- ``solid_angle_after`` (string, default ``moving``): as ``pbdr_edge``'s:
  every vertex on a moving mesh holds the next one in solid angle
  (``moving``; an x_a on a moving mesh holds its sides so at any depth of
  the camera path, and one behind such a vertex moves with it), or the
  camera vertex only (``camera``). With ``first_bounce`` ``area`` and
  ``solid_angle_after`` ``camera`` every vertex is fixed in space: the
  least noise for an object away from other surfaces, heavy tails for
  objects resting on or against others (see the integrator docs).
  ``solid_angle_chain`` must be 1 (``pbdr_edge``'s longer chains are
  not followed by the path-space term).
- ``primary``, ``pathspace``, ``terminators`` (bool, default true),
  ``interior`` (bool, default true): diagnostic switches, to measure one
  term alone.

Limits: the camera walk of the boundary segments stops at delta BSDFs;
surfaces only; perspective sensors.
"""
from __future__ import annotations

import mitsuba as mi

from pbdr.integrators.boundary.pathspace import PathSpaceEdges
from pbdr.integrators.boundary.primary_edges import PrimaryEdges
from pbdr.integrators.boundary.vertex_terminators import VertexTerminators
from pbdr.integrators.composite import with_boundary_terms
from pbdr.integrators.interior import InteriorIntegrator, read_first_bounce, read_solid_angle_after


class PathSpaceIntegrator(with_boundary_terms(InteriorIntegrator)):
    __doc__ = __doc__
    plugin_name = "pbdr_pathspace"
    samples_terminators = True
    term_types = (PrimaryEdges, PathSpaceEdges, VertexTerminators)

    def __init__(self, props: mi.Properties) -> None:
        super().__init__(props)
        self.first_bounce = read_first_bounce(props, "auto")
        self.solid_angle_after = read_solid_angle_after(props, "moving")
        if "solid_angle_chain" in props and int(props["solid_angle_chain"]) != 1:
            raise ValueError(f"pbdr_pathspace: solid_angle_chain must be 1 (the path-space term follows one "
                             f"vertex held in solid angle), got {props['solid_angle_chain']}")
