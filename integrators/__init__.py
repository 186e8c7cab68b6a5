"""pbdr's integrator plugins, registered with Mitsuba for every AD variant.

This is the one place that knows every estimator. Importing it registers
the plugins for the active variant and installs a callback that registers
them again whenever another variant becomes active (Mitsuba keeps one
plugin table per variant).
"""
from __future__ import annotations

import importlib

import mitsuba as mi

# Plugin name -> (module, class). One estimator per module.
PLUGINS: dict[str, tuple[str, str]] = {
    "pbdr_interior": ("pbdr.integrators.interior", "InteriorIntegrator"),
    "pbdr_volume": ("pbdr.integrators.volume", "VolumeIntegrator"),
    "pbdr_edge": ("pbdr.integrators.edge", "EdgeIntegrator"),
    "pbdr_reparam": ("pbdr.integrators.reparam", "ReparamIntegrator"),
    "pbdr_pathspace": ("pbdr.integrators.pathspace", "PathSpaceIntegrator"),
}


def register() -> list[str]:
    """Register every plugin for the active variant; return their names."""
    variant = mi.variant()
    if variant is None or "_ad_" not in variant:
        return []
    for name, (module, cls_name) in PLUGINS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        mi.register_integrator(name, lambda props, cls=cls: cls(props))
    return list(PLUGINS)


def _on_variant_change(old: str | None, new: str | None) -> None:
    register()


mi.detail.add_variant_callback(_on_variant_change)
register()
