"""How far optimized parameters are from the truth, when the target is a scene.

The truth of a plain parameter is its value in the target scene; of a
translate, the mean offset of the target's vertices (or ``to_world``
translation) from the initial scene's. Demos and tests use this to report
recovery errors without copying numbers from the XML.

Free vertices are compared as surfaces (:class:`SurfaceTarget`), not vertex
by vertex: vertices may slide along the surface they recover.
"""
from __future__ import annotations

from dataclasses import dataclass

import mitsuba as mi
import numpy as np

from ..errors import PbdrError
from ..geometry.surface_error import surface_rms_error
from ..perturb import is_transform
from ..scene import faces_key, load_scene
from .config import OptimizeConfig


def truth_values(config: OptimizeConfig) -> dict[str, list[float]]:
    """The true value of every ``[[param]]`` when ``[target]`` is a scene.

    A plain parameter's truth is its value in the target scene; a
    translate's, the mean offset of the target's vertices (or ``to_world``
    translation) from the initial scene's. Raises PbdrError when the target
    is given as images.
    """
    if not config.target.scene:
        raise PbdrError("the truth is only known when [target] is a scene")
    target = mi.traverse(load_scene(config.target.scene, {**config.defines, **config.target.defines}))
    initial = mi.traverse(load_scene(config.scene, config.defines))
    out = {}
    for p in config.params:
        value = target[p.key]
        if p.transform == "translate":
            if is_transform(value):
                delta = np.array(value.matrix)[..., :3, 3] - np.array(initial[p.key].matrix)[..., :3, 3]
            else:
                delta = (np.array(value) - np.array(initial[p.key])).reshape(-1, 3).mean(axis=0)
            out[p.key] = [float(v) for v in np.ravel(delta)]
        else:
            out[p.key] = [float(v) for v in np.array(value).ravel()]
    return out


def parameter_errors(config: OptimizeConfig, values: dict[str, list[float]]) -> dict[str, float]:
    """Largest absolute error per parameter key."""
    truth = truth_values(config)
    return {k: float(np.max(np.abs(np.array(values[k]) - np.array(truth[k])))) for k in truth}


@dataclass
class SurfaceTarget:
    """The target surface of a free-vertex ``[[param]]``, to measure meshes against.

    ``error(positions)`` is :func:`pbdr.geometry.surface_error.surface_rms_error`
    of a mesh with the initial mesh's faces against the target scene's mesh,
    along ``rays`` directions from ``centre`` (the initial mesh's vertex
    centroid when built by :func:`surface_target`).
    """

    faces: np.ndarray
    target_positions: np.ndarray
    target_faces: np.ndarray
    centre: np.ndarray
    rays: int = 4096

    def error(self, positions: np.ndarray | list[float]) -> float:
        """RMS distance along the rays between the mesh at ``positions`` and the target."""
        return surface_rms_error(np.asarray(positions), self.faces, self.target_positions, self.target_faces,
                                 self.centre, self.rays)


def surface_target(config: OptimizeConfig, key: str, rays: int = 4096) -> SurfaceTarget:
    """The target scene's mesh for the ``*.vertex_positions`` key ``key``,
    with the initial mesh's faces and vertex centroid (the rays' origin).
    Raises PbdrError when the target is given as images."""
    if not config.target.scene:
        raise PbdrError("the target surface is only known when [target] is a scene")
    target = mi.traverse(load_scene(config.target.scene, {**config.defines, **config.target.defines}))
    initial = mi.traverse(load_scene(config.scene, config.defines))
    fk = faces_key(initial, key, f"surface error of '{key}'")
    start = np.array(initial[key], dtype=np.float64).reshape(-1, 3)
    return SurfaceTarget(np.array(initial[fk]), np.array(target[key]), np.array(target[fk]),
                         start.mean(axis=0), rays)
