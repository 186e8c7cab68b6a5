"""Boundary terms of the derivative, one module each, on the interface of
``term.py`` (a term yields samples; one generic splat adds them to the
image in forward mode or to the parameters' gradients in reverse mode):

- ``primary_edges``: silhouettes and creases seen from the camera (with
  ``primary_terminators``: shading terminators of smooth meshes);
- ``secondary_edges``: silhouettes seen from path vertices (with
  ``secondary_terminators``, ``edge_sampling`` for the per-point edge
  distribution, ``medium_vertices`` for paths through media);
- ``pathspace``: boundary segments drawn from the edges (with
  ``pathspace_guiding``), and ``vertex_terminators``: the secondary
  terminators as a term of their own (``pbdr_pathspace``);
- ``sides``: tracing the two sides of a sample.
"""
