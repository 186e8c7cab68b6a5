"""Inverse rendering: recover scene parameters from images by gradient descent.

``optimize(config)`` runs a TOML config (or an ``OptimizeConfig`` built with
``config_from_dict``); ``pbdr optimize CONFIG.toml`` is the same function.
"""
from __future__ import annotations

from .config import OptimizeConfig, ParamSpec, config_from_dict, load_config
from .loop import OptimizeResult, optimize
from .truth import parameter_errors, truth_values

__all__ = ["OptimizeConfig", "ParamSpec", "OptimizeResult", "config_from_dict", "load_config",
           "optimize", "parameter_errors", "truth_values"]
