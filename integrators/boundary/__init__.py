"""Boundary terms of the derivative (each returns a derivative image in
forward mode and accumulates parameter gradients in reverse mode):
``primary_edges`` (silhouettes seen from the camera), ``secondary_edges``
(silhouettes seen from shading points)."""
