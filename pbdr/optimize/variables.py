"""What the optimizer moves: a latent array per ``[[param]]`` and how it maps
onto the scene.

A plain parameter is its own latent. ``transform = "translate"`` keeps the
initial vertex positions (or ``to_world``) and optimizes a 3-vector offset:
three numbers are far easier to recover than thousands of free vertices, and
the shape cannot tangle while it moves.

``transform = "largesteps"`` optimizes free vertex positions through their
differential coordinates u = (I + λL) v (Nicolet, Jacobson, Jakob 2021,
"Large Steps in Inverse Rendering of Geometry", ``mi.ad.LargeSteps``): a
step on u moves whole neighbourhoods smoothly, so sparse silhouette
gradients reshape a mesh without crumpling it. Its Adam step uses one
second moment for the whole array (the paper's "uniform" Adam).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import PbdrError
from ..perturb import is_transform
from ..scene import faces_key, resolve_key
from .config import ParamSpec


@dataclass
class Variable:
    spec: ParamSpec
    latent: Any          # the Dr.Jit array Adam updates
    base: Any = None     # initial scene value (translate) or the LargeSteps solver

    @property
    def key(self) -> str:
        return self.spec.key

    def scene_value(self) -> Any:
        """The scene parameter as a function of the latent (differentiable)."""
        if self.spec.transform == "largesteps":
            return self.base.from_differential(self.latent)
        if self.spec.transform != "translate":
            return self.latent
        if is_transform(self.base):
            return mi.Transform4f().translate(self.latent) @ self.base
        points = dr.unravel(mi.Point3f, self.base) + self.latent
        return dr.ravel(points)

    def apply(self, params: mi.SceneParameters, grad: bool) -> None:
        """Write the latent into the scene (attached to it when ``grad``)."""
        if grad:
            dr.enable_grad(self.latent)
        params[self.key] = self.scene_value()

    def clamp(self) -> None:
        if self.spec.range is not None:
            self.latent = dr.clip(self.latent, *self.spec.range)

    @property
    def uniform_adam(self) -> bool:
        return self.spec.transform == "largesteps"

    def numbers(self) -> list[float]:
        """The optimized value as plain numbers (what ``params.json`` holds):
        the parameter itself, or the 3 numbers of a translation."""
        value = self.latent if self.spec.transform != "largesteps" else self.scene_value()
        return [float(v) for v in np.array(dr.detach(value)).ravel()]

    def to_numpy(self) -> np.ndarray:
        return np.array(dr.detach(self.latent))

    def from_numpy(self, array: np.ndarray) -> None:
        self.latent = type(self.latent)(array)


def make_variable(params: mi.SceneParameters, spec: ParamSpec) -> Variable:
    """Check ``spec`` against the scene and build its latent (with ``init`` applied)."""
    value = params.get(spec.key) if spec.key in params else None
    if spec.transform == "translate":
        if value is None:
            resolve_key(params, spec.key)  # raises with the nearest keys
        if not (spec.key.endswith("vertex_positions") or is_transform(value)):
            raise PbdrError(f"[[param]] '{spec.key}': transform = \"translate\" needs a "
                            "'*.vertex_positions' or '*.to_world' key")
        base = type(value)(value) if is_transform(value) else dr.detach(type(value)(value))
        init = spec.init or [0.0, 0.0, 0.0]
        if len(init) != 3:
            raise PbdrError(f"[[param]] '{spec.key}': init of a translate needs 3 numbers, got {len(init)}")
        return Variable(spec, mi.Vector3f(*init), base)
    if spec.transform == "largesteps":
        return largesteps_variable(params, spec, value)
    if value is not None and is_transform(value):
        raise PbdrError(f"[[param]] '{spec.key}' is a transform: add transform = \"translate\"")
    resolve_key(params, spec.key)
    latent = dr.detach(type(value)(value))
    if spec.init is not None:
        current = np.array(latent)
        n = current.size
        if len(spec.init) not in (1, n):
            raise PbdrError(f"[[param]] '{spec.key}': init has {len(spec.init)} numbers, "
                            f"the parameter has {n} (give 1 or {n})")
        latent = type(latent)(np.resize(np.array(spec.init, dtype=current.dtype), n).reshape(current.shape))
    var = Variable(spec, latent)
    var.clamp()
    return var


def largesteps_variable(params: mi.SceneParameters, spec: ParamSpec, value: Any) -> Variable:
    """Free vertices, optimized in differential coordinates u = (I + λL) v."""
    if value is None:
        resolve_key(params, spec.key)
    if not spec.key.endswith("vertex_positions"):
        raise PbdrError(f"[[param]] '{spec.key}': transform = \"largesteps\" needs a '*.vertex_positions' key")
    faces = params[faces_key(params, spec.key, f"[[param]] '{spec.key}'")]
    positions = dr.detach(mi.Float(value))
    try:
        from mitsuba.ad import LargeSteps
        solver = LargeSteps(positions, mi.UInt32(faces), spec.lambda_)
    except ImportError:
        raise PbdrError("transform = \"largesteps\" needs the 'cholespy' package (pip install cholespy)") from None
    if spec.init is not None:
        if len(spec.init) != dr.width(positions):
            raise PbdrError(f"[[param]] '{spec.key}': init has {len(spec.init)} numbers, "
                            f"the mesh has {dr.width(positions)} vertex coordinates")
        positions = mi.Float(np.array(spec.init, dtype=np.float32))
    return Variable(spec, solver.to_differential(positions), solver)
