"""The optimization config: a TOML file (or a dict) checked once, up front.

Every mistake a user can make in a config (an unknown key, a missing file, a
value of the wrong type) ends in one PbdrError line that names the key and the
file, before any rendering starts: a typo found after ten minutes of
optimization is a wasted ten minutes. Paths are relative to the config file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import PbdrError
from ..scene import parse_defines

LOSSES = ("l1", "l2", "relative_l2", "multiscale_l1")
TRANSFORMS = ("translate", "largesteps")
REGULARIZERS = ("laplacian", "tv")
SCHEDULES = ("constant", "exponential", "step", "cosine")

# Allowed keys per table; anything else is a typo until proven otherwise.
TOP_KEYS = {"scene", "integrator", "integrator_props", "iterations", "spp", "spp_grad", "seed",
            "defines", "sensors", "target", "param", "loss", "regularizer", "schedule", "output"}
TARGET_KEYS = {"scene", "spp", "images", "defines"}
PARAM_KEYS = {"key", "lr", "init", "range", "transform", "lambda"}
LOSS_KEYS = {"type", "levels"}
REG_KEYS = {"type", "key", "weight"}
SCHEDULE_KEYS = {"type", "gamma", "every", "min_factor"}
OUTPUT_KEYS = {"dir", "image_every", "checkpoint_every"}


@dataclass
class ParamSpec:
    """One ``[[param]]``: a scene parameter and how the optimizer moves it."""

    key: str
    lr: float
    init: list[float] | None = None
    range: tuple[float, float] | None = None
    transform: str | None = None      # "translate": a 3-vector offset; "largesteps": u = (I + λL) v
    lambda_: float = 19.0             # largesteps: λ, how far gradients diffuse over the mesh


@dataclass
class TargetSpec:
    """Reference images: rendered once from ``scene`` at ``spp``, or read from ``images``."""

    scene: str | None = None
    spp: int = 512
    images: list[str] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)


@dataclass
class RegularizerSpec:
    """One ``[[regularizer]]``: a prior on a ``[[param]]`` key, scaled by ``weight``."""

    type: str               # "laplacian" (mesh vertices) or "tv" (grids)
    key: str
    weight: float


@dataclass
class ScheduleSpec:
    """Learning-rate factor per iteration (multiplies every ``lr``)."""

    type: str = "constant"
    gamma: float = 0.5      # exponential: gamma ** (it / iterations); step: gamma every `every`
    every: int = 50
    min_factor: float = 0.1  # cosine: decays from 1 to min_factor


@dataclass
class OptimizeConfig:
    """A checked optimization config (the TOML file's content, paths made absolute).

    Build it with ``load_config`` (a TOML file) or ``config_from_dict``;
    the fields mirror the file's keys, described in the ``optimize`` docs page.
    """

    scene: str
    params: list[ParamSpec]
    target: TargetSpec
    iterations: int = 200
    spp: int = 16
    spp_grad: int | None = None
    seed: int = 0
    integrator: str | None = None
    integrator_props: dict[str, Any] = field(default_factory=dict)
    defines: dict[str, str] = field(default_factory=dict)
    sensors: list[int] | None = None
    loss: str = "l2"
    loss_levels: int = 4
    regularizers: list[RegularizerSpec] = field(default_factory=list)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    out_dir: str | None = None
    image_every: int = 25
    checkpoint_every: int = 10
    source: str = "<dict>"   # where the config came from, for error messages


def load_config(path: str | os.PathLike) -> OptimizeConfig:
    """Read and check a TOML config; relative paths are resolved against its folder."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PbdrError(f"config file not found: {path}")
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - older Pythons
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise PbdrError("reading TOML needs Python >= 3.11 or 'pip install tomli'") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PbdrError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)), source=path)


def config_from_dict(data: dict[str, Any], base_dir: str | os.PathLike = ".",
                     source: str = "<dict>") -> OptimizeConfig:
    """Check a config given as nested dicts (the TOML structure) and build it."""
    base = os.fspath(base_dir)
    where = source

    def fail(msg: str) -> PbdrError:
        return PbdrError(f"{where}: {msg}")

    def check_keys(table: Any, allowed: set[str], name: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise fail(f"{name} must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise fail(f"unknown key '{unknown[0]}' in {name}; allowed: {', '.join(sorted(allowed))}")
        return table

    def number(table: dict, key: str, name: str, default: Any, kind: type = float,
               positive: bool = True) -> Any:
        value = table.get(key, default)
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok or (positive and value <= 0):
            adj = "positive " if positive else ""
            raise fail(f"{name}{key} must be a {adj}{'integer' if kind is int else 'number'}, got {value!r}")
        return kind(value)

    def existing(rel: Any, name: str) -> str:
        if not isinstance(rel, str) or not rel:
            raise fail(f"{name} must be a file name, got {rel!r}")
        full = os.path.normpath(os.path.join(base, rel))
        if not os.path.isfile(full):
            raise fail(f"{name} = '{rel}': file not found ({full})")
        return full

    def defines(table: dict, name: str) -> dict[str, str]:
        value = table.get("defines", {})
        if not isinstance(value, dict):
            raise fail(f"{name}defines must be a table of XML $name values")
        out = {str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in value.items()}
        try:    # the same checks as the CLI's -D
            parse_defines([f"{k}={v}" for k, v in out.items()])
        except PbdrError as exc:
            raise fail(f"{name}defines: {str(exc).removeprefix('-D ')}") from None
        return out

    check_keys(data, TOP_KEYS, "the top level")
    if "scene" not in data:
        raise fail("missing key 'scene' (the initial scene XML)")
    scene = existing(data["scene"], "scene")

    target_t = check_keys(data.get("target", None) or {}, TARGET_KEYS, "[target]")
    if ("scene" in target_t) == ("images" in target_t):
        raise fail("[target] needs either scene = \"target.xml\" or images = [\"target.exr\", ...]")
    target = TargetSpec(spp=number(target_t, "spp", "[target] ", 512, int), defines=defines(target_t, "[target] "))
    if "scene" in target_t:
        target.scene = existing(target_t["scene"], "[target] scene")
    else:
        images = target_t["images"]
        if not isinstance(images, list) or not images:
            raise fail("[target] images must be a non-empty list of image files, one per sensor")
        target.images = [existing(p, "[target] images") for p in images]

    raw_params = data.get("param", [])
    if not isinstance(raw_params, list) or not raw_params:
        raise fail("no [[param]] to optimize")
    params = []
    for i, p in enumerate(raw_params):
        name = f"[[param]] #{i + 1}"
        check_keys(p, PARAM_KEYS, name)
        if not isinstance(p.get("key"), str):
            raise fail(f"{name} needs key = \"<mi.traverse key>\"")
        spec = ParamSpec(key=p["key"], lr=number(p, "lr", f"{name} ", 0.01))
        if "init" in p:
            init = p["init"] if isinstance(p["init"], list) else [p["init"]]
            if not init or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in init):
                raise fail(f"{name} init must be a number or a list of numbers")
            spec.init = [float(v) for v in init]
        if "range" in p:
            r = p["range"]
            if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                    and r[0] < r[1]):
                raise fail(f"{name} range must be [low, high] with low < high, got {r!r}")
            spec.range = (float(r[0]), float(r[1]))
        if "transform" in p:
            if p["transform"] not in TRANSFORMS:
                raise fail(f"{name} transform must be one of {', '.join(TRANSFORMS)}, got {p['transform']!r}")
            spec.transform = p["transform"]
        if "lambda" in p:
            if spec.transform != "largesteps":
                raise fail(f"{name} lambda only applies to transform = \"largesteps\"")
            spec.lambda_ = number(p, "lambda", f"{name} ", 19.0)
        if spec.transform == "largesteps" and spec.range is not None:
            raise fail(f"{name} range cannot clamp free vertices (transform = \"largesteps\")")
        if spec.key in [q.key for q in params]:
            raise fail(f"parameter '{spec.key}' is listed twice")
        params.append(spec)

    loss_t = check_keys(data.get("loss", {}), LOSS_KEYS, "[loss]")
    loss = loss_t.get("type", "l2")
    if loss not in LOSSES:
        raise fail(f"[loss] type must be one of {', '.join(LOSSES)}, got {loss!r}")

    regs = []
    for i, r in enumerate(data.get("regularizer", [])):
        name = f"[[regularizer]] #{i + 1}"
        check_keys(r, REG_KEYS, name)
        if r.get("type") not in REGULARIZERS:
            raise fail(f"{name} type must be one of {', '.join(REGULARIZERS)}, got {r.get('type')!r}")
        if not isinstance(r.get("key"), str):
            raise fail(f"{name} needs key = \"<parameter key>\"")
        regs.append(RegularizerSpec(r["type"], r["key"], number(r, "weight", f"{name} ", 1.0)))

    sched_t = check_keys(data.get("schedule", {}), SCHEDULE_KEYS, "[schedule]")
    schedule = ScheduleSpec(type=sched_t.get("type", "constant"),
                            gamma=number(sched_t, "gamma", "[schedule] ", 0.5),
                            every=number(sched_t, "every", "[schedule] ", 50, int),
                            min_factor=number(sched_t, "min_factor", "[schedule] ", 0.1))
    if schedule.type not in SCHEDULES:
        raise fail(f"[schedule] type must be one of {', '.join(SCHEDULES)}, got {schedule.type!r}")

    out_t = check_keys(data.get("output", {}), OUTPUT_KEYS, "[output]")
    out_dir = out_t.get("dir")
    if out_dir is not None and not isinstance(out_dir, str):
        raise fail(f"[output] dir must be a folder name, got {out_dir!r}")

    integrator = data.get("integrator")
    if integrator is not None and not isinstance(integrator, str):
        raise fail(f"integrator must be a plugin name, got {integrator!r}")
    props = data.get("integrator_props", {})
    if not isinstance(props, dict):
        raise fail("integrator_props must be a table, e.g. { max_depth = 3 }")
    sensors = data.get("sensors")
    if sensors is not None and not (isinstance(sensors, list) and sensors
                                    and all(isinstance(s, int) and s >= 0 for s in sensors)):
        raise fail(f"sensors must be a list of sensor indices, got {sensors!r}")

    return OptimizeConfig(
        scene=scene, params=params, target=target,
        iterations=number(data, "iterations", "", 200, int),
        spp=number(data, "spp", "", 16, int),
        spp_grad=number(data, "spp_grad", "", None, int),
        seed=number(data, "seed", "", 0, int, positive=False),
        integrator=integrator, integrator_props=dict(props), defines=defines(data, ""),
        sensors=sensors, loss=loss, loss_levels=number(loss_t, "levels", "[loss] ", 4, int),
        regularizers=regs, schedule=schedule,
        out_dir=os.path.normpath(os.path.join(base, out_dir)) if out_dir else None,
        image_every=number(out_t, "image_every", "[output] ", 25, int),
        checkpoint_every=number(out_t, "checkpoint_every", "[output] ", 10, int),
        source=where)
