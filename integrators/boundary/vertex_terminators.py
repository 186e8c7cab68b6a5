r"""
Terminator arcs seen from path vertices, as a boundary term of its own
======================================================================

The shading terminators of smooth-shaded meshes (``secondary_terminators.py``)
are discontinuities inside triangles: seen from a shading point :math:`p`,
the radiance reflected by a face jumps across the arc where the
interpolated normal turns away from :math:`p`. ``pbdr_edge`` samples them
at the vertices of its secondary term's camera paths, beside the edges
(``secondary_edges.samples_per_vertex``). Integrators whose other terms do
not walk camera paths (``pbdr_pathspace``, whose boundary segments start
from the edges) add this term instead: camera paths of their own, walked
by BSDF sampling (``secondary_edges.surface_vertices``), and one terminator
sample at each of their vertices (``secondary_terminators.terminator_samples_at``),
the same estimator as ``pbdr_edge``'s.

The side paths at vertex :math:`k` have :math:`\text{max\_depth} - 1 - k`
segments. With one segment left they see emission only, and both sides of
an arc on a face that emits nothing see none: the walk stops at
:math:`k < \text{max\_depth} - 2` unless a smooth mesh is an emitter (so
at ``max_depth`` 2, direct illumination, the term is empty and costs
nothing).

Samples: ``spp_terminators`` camera paths per pixel (default a 32nd of
the interior spp, at least one), of whose vertices a share
``terminator_fraction`` draws a sample (weighted by its inverse; default 1:
the paths are walked for these samples alone; ``pbdr_edge`` draws a quarter
of the vertices of an eighth of the paths, the same count), among
``terminator_candidates`` faces per vertex.
"""
from __future__ import annotations

from typing import Iterator

import drjit as dr
import mitsuba as mi

from pbdr.geometry.moving import moving_meshes
from pbdr.geometry.terminators import is_smooth_shaded
from pbdr.integrators.boundary.edge_sampling import DEFAULT_TERMINATOR_CANDIDATES
from pbdr.integrators.boundary.secondary_edges import surface_vertices
from pbdr.integrators.boundary.secondary_terminators import TerminatorSampler, smooth_face_set, terminator_samples_at
from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, Setting, walk_depth

STREAM = 0x7E41     # the camera paths' random stream (seeded with the call's seed)


class VertexTerminators(BoundaryTerm):
    """Shading terminators of smooth meshes seen from camera-path vertices
    (this module's docstring): ``terminators``, ``spp_terminators``,
    ``terminator_candidates`` and ``terminator_fraction``."""

    name = "terminators"
    spp_divisor = 32
    settings = (
        Setting("terminator_candidates", DEFAULT_TERMINATOR_CANDIDATES,
                "smooth faces weighed per vertex for a terminator arc (0: all)",
                lambda v: None if v >= 0 else "must be >= 0 (0: all faces)"),
        Setting("terminator_fraction", 1.0,
                "share of vertices, drawn per lane, that take a terminator sample (weighted 1/q)",
                lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
    )

    def applies(self, scene: mi.Scene) -> bool:
        """Some mesh moves and some mesh is smooth-shaded (a static smooth mesh's
        arcs move as seen from points on a moving one)."""
        return bool(moving_meshes(scene)) and any(is_smooth_shaded(s) for s in scene.shapes())

    def samples(self, scene: mi.Scene, sensor: mi.Sensor, integrator: mi.Integrator,
                seed: mi.UInt32, count: int) -> Iterator[BoundarySamples]:
        depth = walk_depth(integrator)
        faces = smooth_face_set(scene)
        if faces is None:
            return
        # With one segment left the sides see emission only: nothing across an arc of a non-emitter.
        emits = any(is_smooth_shaded(s) and s.is_emitter() for s in scene.shapes())
        vertices = depth - 1 if emits else depth - 2
        if vertices < 1:
            return
        term_sampler = TerminatorSampler(faces, self.values["terminator_candidates"],
                                         self.values["terminator_fraction"])
        with dr.suspend_grad():
            s_path = mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(STREAM))[0]
            sampler = sensor.sampler().clone()
            sampler.seed(s_path, count)
        for vertex in surface_vertices(scene, sensor, integrator, sampler, count, vertices):
            pos, terms, active = terminator_samples_at(sensor, integrator, faces, term_sampler, sampler, seed,
                                                       count, vertex)
            yield BoundarySamples(pos, terms, active)
