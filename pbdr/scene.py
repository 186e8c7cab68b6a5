"""Loading Mitsuba XML scenes and naming their parameters.

Scenes are loaded with ``optimize=False`` so that shapes sharing a BSDF keep
their own ``mi.traverse`` keys. Parameter keys are checked here, once, with
the nearest keys suggested when a name is wrong.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from typing import Any, Sequence

import drjit as dr
import mitsuba as mi

from .errors import PbdrError, one_line
from .variant import ensure_variant


def parse_defines(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's ``-D``) to a dict of XML defaults."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PbdrError(f"-D expects key=value, got '{pair}'")
        if not all(is_finite_or_text(v) for v in value.split(",")):
            raise PbdrError(f"-D {pair.strip()}: the value is not a finite number")
        out[key.strip()] = value.strip()
    return out


def is_finite_or_text(text: str) -> bool:
    """False for text that reads as a NaN or infinite number ("nan", "inf", "1e999")."""
    try:
        value = float(text)
    except ValueError:
        return True
    return math.isfinite(value)


def load_scene(path: str | os.PathLike, defines: dict[str, Any] | None = None) -> mi.Scene:
    """Load an XML scene with ``$key`` defaults from ``defines``.

    Raises PbdrError (one line) for a missing file or malformed XML.
    """
    ensure_variant()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PbdrError(f"scene file not found: {path}")
    defines = {k: str(v) for k, v in (defines or {}).items()}
    try:
        return mi.load_file(path, optimize=False, **defines)
    except Exception as exc:  # Mitsuba raises RuntimeError/ValueError with C++ detail
        raise PbdrError(f"cannot load scene {path}: {one_line(exc)}") from None


def scene_params(scene: mi.Scene) -> mi.SceneParameters:
    """The scene's parameters by ``mi.traverse`` key (``mi.traverse(scene)``)."""
    return mi.traverse(scene)


def nearest_keys(key: str, keys: list[str], n: int = 5) -> list[str]:
    """Keys that look like ``key``: close spellings first, then shared suffixes."""
    close = difflib.get_close_matches(key, keys, n=n, cutoff=0.4)
    tail = key.split(".")[-1]
    close += [k for k in keys if k.endswith("." + tail) and k not in close]
    return close[:n]


def is_float_array(value: Any) -> bool:
    """Whether a parameter value is a floating-point Dr.Jit array (can carry gradients)."""
    return dr.is_array_v(value) and dr.is_float_v(value) and dr.is_diff_v(value)


def faces_key(params: mi.SceneParameters, key: str, what: str) -> str:
    """The ``*.faces`` key of the mesh whose ``*.vertex_positions`` is ``key``
    (``what`` names the user of it in the error)."""
    faces = key[: -len("vertex_positions")] + "faces"
    if not key.endswith("vertex_positions") or faces not in params:
        raise PbdrError(f"{what}: no '{faces}' for '{key}'")
    return faces


def resolve_key(params: mi.SceneParameters, key: str) -> str:
    """Check that ``key`` names a differentiable parameter; return it.

    Parameters that Mitsuba flags NonDifferentiable but that are real-valued
    (``sdfgrid``'s ``grid``, volume grids' ``data``) are accepted: users do
    want to differentiate them, and gradients flow through them once enabled.
    """
    keys = list(params.keys())
    if key not in params:
        near = nearest_keys(key, keys)
        hint = f"; nearest: {', '.join(near)}" if near else f"; the scene has {len(keys)} keys"
        raise PbdrError(f"unknown parameter '{key}'{hint}")
    value = params[key]
    if isinstance(value, (bool, int, float)):
        raise PbdrError(f"parameter '{key}' is a plain Python {type(value).__name__}, a setting "
                        "Mitsuba keeps outside the AD graph: it is not differentiable")
    if not is_float_array(value):
        kind = type(value).__name__
        raise PbdrError(f"parameter '{key}' ({kind}) is not differentiable: "
                        "it holds no floating-point values")
    return key


def has_media(scene: mi.Scene) -> bool:
    """Whether any shape or sensor of the scene bounds a participating medium."""
    for shape in scene.shapes():
        if shape.interior_medium() is not None or shape.exterior_medium() is not None:
            return True
    # Sensors' media are not exposed to Python; a camera inside a medium is
    # inside a shape that bounds it, which the loop above sees.
    return False


# Settings of the scene's integrator that another integrator type inherits.
CARRIED_SETTINGS = ("max_depth", "rr_depth", "hide_emitters")


def integrator_setting(integrator: mi.Integrator, name: str) -> int | bool | None:
    """A setting (``max_depth``, ``rr_depth``, ``hide_emitters``) of a loaded integrator.

    Python integrators have it as an attribute; C++ ones only print it.
    """
    value = getattr(integrator, name, None)
    if isinstance(value, int):
        return value
    m = re.search(rf"\b{name} = (-?\d+)", str(integrator))
    return int(m.group(1)) if m else None


AUTO = "auto"


def _owner(scene: mi.Scene, key: str) -> tuple[str, Any]:
    """The id and object (shape or emitter) whose parameter ``key`` is, or ("", None)."""
    for obj in list(scene.shapes()) + list(scene.emitters()):
        if obj.id() and key.startswith(obj.id() + "."):
            return obj.id(), obj
    return "", None


def is_sdf_key(scene: mi.Scene, key: str) -> bool:
    """Whether ``key`` is the grid or the placement of an ``sdfgrid`` shape."""
    _, obj = _owner(scene, key)
    return (isinstance(obj, mi.Shape) and obj.shape_type() == mi.ShapeType.SDFGrid
            and (key.endswith(".grid") or key.endswith(".to_world")))


def moves_geometry(key: str) -> bool:
    """Whether ``key`` places or shapes something (a boundary-term parameter)."""
    return key.endswith(".vertex_positions") or key.endswith(".to_world") or key.endswith(".grid")


def auto_integrator_type(scene: mi.Scene, keys: Sequence[str] = ()) -> tuple[str, str]:
    """The pbdr integrator for derivatives of ``scene`` with respect to ``keys``, and why.

    Media in the scene: ``pbdr_volume``. An ``sdfgrid``'s grid or placement:
    ``pbdr_reparam`` (which needs a smooth pixel filter; a box filter is a
    PbdrError that says how to fix it). Mesh geometry or a moving emitter:
    ``pbdr_edge``. Anything else (materials, emitted radiance, textures):
    ``pbdr_interior``.
    """
    if has_media(scene):
        return "pbdr_volume", "the scene has participating media"
    sdf = [k for k in keys if is_sdf_key(scene, k)]
    if sdf:
        for sensor in scene.sensors():
            if sensor.film().rfilter().is_box_filter():
                raise PbdrError(f"'{sdf[0]}' moves an SDF grid, whose derivatives (pbdr_reparam) need a "
                                "smooth pixel filter: give the film <rfilter type=\"gaussian\"/>")
        return "pbdr_reparam", f"'{sdf[0]}' moves an SDF grid"
    moving = [k for k in keys if moves_geometry(k)]
    if moving:
        return "pbdr_edge", f"'{moving[0]}' moves geometry, so boundary terms are needed"
    return "pbdr_interior", "no parameter moves geometry"


def is_pbdr(integrator: mi.Integrator) -> bool:
    """Whether ``integrator`` is one of pbdr's (it then declares its
    capabilities: ``pbdr.integrators.base.PbdrIntegrator``)."""
    from .integrators.base import PbdrIntegrator   # needs a variant: not at import time

    return isinstance(integrator, PbdrIntegrator)


def has_boundary_terms(integrator: mi.Integrator) -> bool:
    """Whether ``integrator``'s derivatives include boundary terms (moving
    silhouettes and shadows). pbdr's integrators declare it
    (``PbdrIntegrator.boundary_terms``); Mitsuba's projective ones
    (``prb_projective``, ``direct_projective``) have them; ``prb``,
    ``prbvolpath`` and the like do not."""
    if is_pbdr(integrator):
        return integrator.boundary_terms
    return isinstance(integrator, mi.ad.integrators.common.PSIntegrator)


def integrator_name(integrator: mi.Integrator) -> str:
    """The plugin name of a loaded integrator (pbdr's declare ``plugin_name``;
    Mitsuba's are named by their class)."""
    return integrator.plugin_name if is_pbdr(integrator) else type(integrator).__name__


def boundary_warning(keys: Sequence[str], integrator: mi.Integrator) -> str | None:
    """A one-line warning when a parameter moves geometry and ``integrator``
    has no boundary terms (its derivative then misses every moving edge)."""
    moving = [k for k in keys if moves_geometry(k)]
    if not moving or has_boundary_terms(integrator):
        return None
    return (f"{integrator_name(integrator)} has no boundary terms: the derivative of '{moving[0]}' misses the silhouettes and "
            "shadows that move with it; use --integrator auto")


def sdf_warning(scene: mi.Scene, keys: Sequence[str], integrator: mi.Integrator) -> str | None:
    """A one-line warning when a parameter moves an ``sdfgrid`` shape and
    ``integrator`` has no derivative of its surface (only ``pbdr_reparam``,
    which warps directions, has one; the others hold SDF hit points fixed)."""
    sdf = [k for k in keys if is_sdf_key(scene, k)]
    if not sdf or (is_pbdr(integrator) and integrator.warps_directions):
        return None
    return (f"{integrator_name(integrator)} holds the surfaces of sdfgrid shapes fixed: the derivative of "
            f"'{sdf[0]}' misses their motion; use --integrator pbdr_reparam")


def renders_media(integrator: mi.Integrator) -> bool:
    """Whether ``integrator`` renders participating media (``volpath``-like).

    Surface integrators (``path``, ``prb``, ``pbdr_interior``, ``pbdr_edge``)
    ignore media and count a null-BSDF medium boundary as a bounce; volumetric
    ones pass through it. pbdr's integrators declare it
    (``PbdrIntegrator.renders_media``); Mitsuba's are recognised by name.
    """
    if is_pbdr(integrator):
        return integrator.renders_media
    return "volpath" in type(integrator).__name__.lower() or str(integrator).startswith("Volumetric")


def media_warning(scene: mi.Scene, integrator: mi.Integrator) -> str | None:
    """A one-line warning when a surface integrator is given a scene with media."""
    if not has_media(scene) or renders_media(integrator):
        return None
    return (f"the scene has participating media, which {integrator_name(integrator)} ignores (medium boundaries count as "
            "bounces, as in Mitsuba's path); pbdr_volume renders them")


def smooth_shading_warning(scene: mi.Scene, keys: list[str], integrator: mi.Integrator | None) -> str | None:
    """A one-line warning when parameters move smooth-shaded meshes and the
    integrator does not sample their shading terminators: where the
    interpolated normal turns away from a viewer while the face does not,
    Mitsuba's BSDFs return nothing, a discontinuity inside triangles.
    Integrators that sample it (seen from the camera and from shading
    points) declare ``PbdrIntegrator.samples_terminators`` (``pbdr_edge``,
    ``pbdr_volume``); FD (``integrator`` None) needs none."""
    if integrator is None or (is_pbdr(integrator) and integrator.samples_terminators):
        return None
    from .geometry.terminators import is_smooth_shaded
    moved = [s.id() for s in scene.shapes()
             if any(k.startswith(s.id() + ".") and (k.endswith(".vertex_positions") or k.endswith(".to_world"))
                    for k in keys) and is_smooth_shaded(s)]
    if not moved:
        return None
    return (f"{', '.join(repr(m) for m in moved)} {'is' if len(moved) == 1 else 'are'} smooth-shaded "
            f"(vertex normals): {integrator_name(integrator)} does not sample the shading terminators "
            "inside its triangles, so its shape derivatives are biased there; pbdr_edge does, and flat "
            "shading (face_normals=true) has none")


def make_integrator(scene: mi.Scene, type_: str | None = None, max_depth: int | None = None,
                    differentiable: bool = False, props: dict[str, Any] | None = None,
                    settings_from: mi.Integrator | None = None, keys: Sequence[str] = ()) -> mi.Integrator:
    """The integrator to render ``scene`` with.

    ``type_=None`` keeps the scene's own integrator, except that with
    ``differentiable=True`` a non-AD integrator (e.g. ``path``) is replaced by
    the one :func:`auto_integrator_type` picks for the parameters ``keys``.
    ``type_="auto"`` does the same. ``props`` are plugin settings for
    ``type_``. The scene integrator's ``max_depth``, ``rr_depth`` and
    ``hide_emitters`` (or ``settings_from``'s) carry over where
    ``props``/``max_depth`` do not set them, and are dropped for types that do
    not take them.
    """
    return make_integrator_why(scene, type_, max_depth, differentiable, props, settings_from, keys)[0]


def make_integrator_why(scene: mi.Scene, type_: str | None = None, max_depth: int | None = None,
                        differentiable: bool = False, props: dict[str, Any] | None = None,
                        settings_from: mi.Integrator | None = None,
                        keys: Sequence[str] = ()) -> tuple[mi.Integrator, str | None]:
    """:func:`make_integrator`, and why the type was chosen when it was chosen
    automatically (None when the caller or the scene named it)."""
    own = scene.integrator()
    why = None
    if type_ == AUTO or (type_ is None and differentiable):
        if isinstance(own, mi.ad.integrators.common.ADIntegrator) and max_depth is None and not props:
            return own, None       # the scene names a differentiable integrator: its author's choice
        type_, why = auto_integrator_type(scene, keys)
    if type_ is None and max_depth is None:
        return own, None
    if type_ is None:
        raise PbdrError("--max-depth needs --integrator to name the integrator type")
    if max_depth is not None and (max_depth == 0 or max_depth < -1):
        raise PbdrError(f"max depth must be -1 (infinite) or >= 1, got {max_depth}")
    explicit = dict(props or {})
    props = {"type": type_, **explicit}
    if max_depth is not None:
        props["max_depth"] = max_depth
    # Settings carried over from the scene's integrator, dropped for types without them.
    source = settings_from if settings_from is not None else own
    carried = {name: integrator_setting(source, name) for name in CARRIED_SETTINGS
               if name not in props}
    props.update({k: v for k, v in carried.items() if v is not None})
    while True:
        try:
            return mi.load_dict(props), why
        except Exception as exc:
            unused = [k for k in carried if k in props and f'"{k}"' in str(exc)]
            if not unused:
                with_props = f" with {explicit}" if explicit else ""
                raise PbdrError(f"cannot create integrator '{type_}'{with_props}: {one_line(exc)}") from None
            for k in unused:
                del props[k]
