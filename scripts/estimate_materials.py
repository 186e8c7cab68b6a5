"""Material estimation: recover the diffuse albedo of the two side walls and
the roughness (GGX alpha) of the metal sphere in scenes/cbox.xml.

    python scripts/estimate_materials.py

The target is cbox.xml as written; the optimization starts from grey walls
and a rough sphere (``init``). Same machinery as ``pbdr optimize``.
"""
from __future__ import annotations

import os

import numpy as np

import pbdr
from pbdr.optimize import config_from_dict, optimize, truth_values

SCENES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenes")

config = config_from_dict({
    "scene": "cbox.xml", "integrator": "pbdr_interior", "iterations": 120, "spp": 8,
    "defines": {"res": "32"},
    "target": {"scene": "cbox.xml", "spp": 512},
    "param": [
        {"key": "red.reflectance.value", "lr": 0.03, "init": [0.5], "range": [0, 1]},
        {"key": "green.reflectance.value", "lr": 0.03, "init": [0.5], "range": [0, 1]},
        {"key": "metal.alpha.value", "lr": 0.02, "init": [0.5], "range": [0.01, 1]},
    ],
    "schedule": {"type": "exponential", "gamma": 0.2},
    "output": {"dir": "../runs/estimate_materials"},
}, base_dir=SCENES)

if __name__ == "__main__":
    pbdr.set_variant()
    result = optimize(config, force=True)
    for key, truth in truth_values(config).items():
        print(f"{key:26s} recovered {np.round(result.values[key], 3)}  truth {np.round(truth, 3)}")
