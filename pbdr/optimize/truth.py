"""How far optimized parameters are from the truth, when the target is a scene.

The truth of a plain parameter is its value in the target scene; of a
translate, the mean offset of the target's vertices (or ``to_world``
translation) from the initial scene's. Demos and tests use this to report
recovery errors without copying numbers from the XML.
"""
from __future__ import annotations

import mitsuba as mi
import numpy as np

from ..errors import PbdrError
from ..perturb import is_transform
from ..scene import load_scene
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
