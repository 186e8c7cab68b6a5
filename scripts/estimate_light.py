"""Light estimation: recover the radiance and the position (a translation of
its mesh) of an area light that the camera does not see, from the shading
and the shadow it casts (scenes/opt_light).

    python scripts/estimate_light.py

Moving the light needs boundary terms (the shadow edge moves), so the
default integrator is pbdr_edge when registered, else Mitsuba's
prb_projective; the interior term alone (prb, pbdr_interior) has zero
derivative with respect to the light's position.
"""
from __future__ import annotations

import os

import numpy as np

import pbdr
from pbdr.optimize import config_from_dict, optimize, truth_values

SCENES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenes")

config = config_from_dict({
    "scene": "scene.xml", "iterations": 100, "spp": 8, "defines": {"res": "24"},
    "target": {"scene": "scene.xml", "spp": 512,
               "defines": {"radiance": "30, 24, 18", "light_x": "0.1", "light_z": "-0.1"}},
    "param": [
        {"key": "light.emitter.radiance.value", "lr": 1.0, "range": [0, 200]},
        {"key": "light.vertex_positions", "transform": "translate", "lr": 0.02},
    ],
    "loss": {"type": "l1"},
    "schedule": {"type": "exponential", "gamma": 0.3},
    "output": {"dir": "../../runs/estimate_light"},
}, base_dir=os.path.join(SCENES, "opt_light"))

if __name__ == "__main__":
    pbdr.set_variant()
    result = optimize(config, force=True)
    for key, truth in truth_values(config).items():
        print(f"{key:30s} recovered {np.round(result.values[key], 3)}  truth {np.round(truth, 3)}")
