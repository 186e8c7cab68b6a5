"""Recover an object's translation from its silhouette and shadow: the cube in
scenes/opt_light is moved by (0.15, 0, 0) in the target; only boundary terms
see a rigid move of a diffuse object, so the default integrator is
pbdr_edge when registered, else Mitsuba's prb_projective (slower, noisier).

    python scripts/recover_translation.py
"""
from __future__ import annotations

import os

import numpy as np

import pbdr
from pbdr.optimize import config_from_dict, optimize, truth_values

SCENES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenes")

config = config_from_dict({
    "scene": "scene.xml", "iterations": 40, "spp": 4, "defines": {"res": "24"},
    "target": {"scene": "scene.xml", "spp": 512, "defines": {"cube_x": "0.15"}},
    "param": [{"key": "cube.vertex_positions", "transform": "translate", "lr": 0.015}],
    "loss": {"type": "l1"},
    "schedule": {"type": "exponential", "gamma": 0.3},
    "output": {"dir": "../../runs/recover_translation"},
}, base_dir=os.path.join(SCENES, "opt_light"))

if __name__ == "__main__":
    pbdr.set_variant()
    result = optimize(config, force=True)
    truth = truth_values(config)["cube.vertex_positions"]
    got = result.values["cube.vertex_positions"]
    print(f"translation recovered {np.round(got, 3)}  truth {np.round(truth, 3)}  "
          f"error {np.max(np.abs(np.array(got) - truth)):.3f} ({result.integrator})")
