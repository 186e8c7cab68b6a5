"""The benchmark manifest: a TOML file of cases, checked once, up front.

A case is a scene (a path relative to the manifest, with ``defines``), a
parameter key, a perturbation (``offset``: all ones; ``translate`` along a
direction; ``rotate`` about an axis), a finite-difference step ``eps`` and a
``class`` (what the case exercises: material, silhouette, shadow, ...)::

    [defaults]            # apply to every case unless it sets them
    res = 64              # the film is res x res (the scene must have <default name="res">)
    fd_spp = 2048         # finite differences: spp and seeds (pbdr bench refs)
    fd_seeds = 16

    [[case]]
    name = "moving_area_light"
    class = "light"
    scene = "../shadow.xml"
    defines = { max_depth = 3 }
    param = "light.to_world"
    perturbation = "translate"
    direction = [1, 0, 0]
    eps = 0.005

Every mistake (an unknown field, a missing scene, an unsupported
perturbation, a parameter key the scene does not have) ends in one
PbdrError line that names the case.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from ..errors import PbdrError, one_line

PERTURBATIONS = ("offset", "translate", "rotate")
CASE_KEYS = {"name", "class", "scene", "defines", "param", "perturbation", "direction", "axis", "eps",
             "fd_scheme", "fd_spp", "fd_seeds", "res", "note"}
DEFAULT_KEYS = {"res", "fd_spp", "fd_seeds", "fd_scheme"}
TOP_KEYS = {"defaults", "case"}
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class Case:
    """One benchmark case: d(image)/dθ of ``param`` moved by ``perturbation``."""

    name: str
    class_: str
    scene: str                      # absolute path
    param: str
    perturbation: str               # "offset", "translate" or "rotate"
    vector: tuple[float, float, float] | None     # the direction or axis (None for offset)
    eps: float
    res: int
    fd_spp: int
    fd_seeds: int
    fd_scheme: str = "central"
    defines: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def scene_defines(self) -> dict[str, str]:
        """The XML defaults the scene is loaded with (``res`` included)."""
        return {**self.defines, "res": str(self.res)}

    def load(self) -> tuple[Any, Any]:
        """The loaded scene and the :class:`pbdr.Perturbation` of the case;
        a PbdrError naming the case when either fails."""
        from ..perturb import Perturbation
        from ..scene import load_scene, scene_params

        try:
            scene = load_scene(self.scene, self.scene_defines())
            translate = self.vector if self.perturbation == "translate" else None
            rotate = self.vector if self.perturbation == "rotate" else None
            p = Perturbation.of(scene_params(scene), self.param, translate, rotate)
        except PbdrError as exc:
            raise PbdrError(f"case '{self.name}': {exc}") from None
        return scene, p

    def describe(self) -> str:
        """``param offset`` / ``param translate (1, 0, 0)``: one short line."""
        what = self.perturbation if self.vector is None else \
            f"{self.perturbation} ({', '.join(f'{v:g}' for v in self.vector)})"
        return f"{self.param} {what}"

    def definition(self) -> dict[str, Any]:
        """What the derivative depends on besides the files (hashed); the FD
        sample counts are not in it: they change the reference's noise, not
        what it estimates (``pbdr bench refs`` recomputes on a change of them too)."""
        return {"param": self.param, "perturbation": self.perturbation, "vector": self.vector,
                "eps": self.eps, "res": self.res, "fd_scheme": self.fd_scheme, "defines": dict(sorted(self.defines.items())),
                "scene": os.path.basename(self.scene)}

    def files(self) -> list[str]:
        """The scene file and every file it names (meshes, grids, textures), existing ones only."""
        return scene_files(self.scene, self.scene_defines())

    def fingerprint(self) -> str:
        """SHA-256 of the scene files' contents and :meth:`definition`: the
        reference is recomputed when, and only when, it changes."""
        h = hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode())
        for path in self.files():
            h.update(os.path.basename(path).encode())
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        return h.hexdigest()


@dataclass
class Suite:
    """The cases of a manifest, in file order."""

    path: str
    cases: list[Case]

    def select(self, names: list[str] | None) -> list[Case]:
        """The cases named (all for None), in manifest order; an unknown name is a PbdrError."""
        if not names:
            return list(self.cases)
        known = {c.name for c in self.cases}
        for n in names:
            if n not in known:
                raise PbdrError(f"no case '{n}' in {self.path} (cases: {', '.join(sorted(known))})")
        return [c for c in self.cases if c.name in names]


def scene_files(path: str, defines: dict[str, str]) -> list[str]:
    """``path`` and the files its ``<string name="filename">`` values name
    (``$key`` replaced from ``defines``, then from the scene's ``<default>``s),
    recursively through ``<include>``d XML files."""
    out, todo = [], [os.path.abspath(path)]
    while todo:
        current = todo.pop(0)
        if current in out or not os.path.isfile(current):
            continue
        out.append(current)
        if not current.lower().endswith(".xml"):
            continue
        try:
            root = ElementTree.parse(current).getroot()
        except ElementTree.ParseError:
            continue          # Mitsuba's loader says what is wrong
        values = {d.get("name"): d.get("value") for d in root.iter("default")}
        values.update(defines)
        folder = os.path.dirname(current)
        for el in root.iter():
            name = el.get("filename") if el.tag == "include" else \
                (el.get("value") if el.tag == "string" and el.get("name") == "filename" else None)
            if name:
                name = re.sub(r"\$(\w+)", lambda m: str(values.get(m.group(1), m.group(0))), name)
                todo.append(os.path.normpath(os.path.join(folder, name)))
    return out


def _number(case: str, key: str, value: Any, kind: type, positive: bool = True) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise PbdrError(f"case '{case}': '{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if positive and not (value > 0 and value == value and value != float("inf")):
        raise PbdrError(f"case '{case}': '{key}' must be positive and finite, got {value!r}")
    return kind(value)


def _vector(case: str, key: str, value: Any) -> tuple[float, float, float]:
    if not (isinstance(value, list) and len(value) == 3 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise PbdrError(f"case '{case}': '{key}' must be three numbers [x, y, z], got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def parse_case(entry: Any, index: int, defaults: dict[str, Any], folder: str,
               res: int | None = None) -> Case:
    """One ``[[case]]`` table checked (``res`` overrides every case's resolution)."""
    if not isinstance(entry, dict):
        raise PbdrError(f"case #{index + 1}: expected a [[case]] table")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise PbdrError(f"case #{index + 1}: needs a 'name' (letters, digits, _ . -), got {name!r}")
    unknown = sorted(set(entry) - CASE_KEYS)
    if unknown:
        raise PbdrError(f"case '{name}': unknown key '{unknown[0]}' (known: {', '.join(sorted(CASE_KEYS))})")
    for key in ("scene", "param", "class"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise PbdrError(f"case '{name}': needs '{key}' (a string)")
    scene = os.path.normpath(os.path.join(folder, entry["scene"]))
    if not os.path.isfile(scene):
        raise PbdrError(f"case '{name}': scene file not found: {scene}")
    kind = entry.get("perturbation", "offset")
    if kind not in PERTURBATIONS:
        raise PbdrError(f"case '{name}': unsupported perturbation {kind!r} ({', '.join(PERTURBATIONS)})")
    vector = None
    if kind == "offset":
        for key in ("direction", "axis"):
            if key in entry:
                raise PbdrError(f"case '{name}': '{key}' applies to translate/rotate, not offset")
    else:
        key = "direction" if kind == "translate" else "axis"
        if key not in entry:
            raise PbdrError(f"case '{name}': perturbation '{kind}' needs '{key}' = [x, y, z]")
        vector = _vector(name, key, entry[key])
    if "eps" not in entry:
        raise PbdrError(f"case '{name}': needs 'eps', the finite-difference step")
    merged = {**defaults, **{k: v for k, v in entry.items() if k in DEFAULT_KEYS}}
    scheme = merged.get("fd_scheme", "central")
    from ..validate import FD_SCHEMES
    if scheme not in FD_SCHEMES:
        raise PbdrError(f"case '{name}': unknown fd_scheme {scheme!r} ({', '.join(FD_SCHEMES)})")
    defines = entry.get("defines", {})
    if not isinstance(defines, dict) or any(isinstance(v, (dict, list)) for v in defines.values()):
        raise PbdrError(f"case '{name}': 'defines' must be a table of plain values")
    if "res" in defines:
        raise PbdrError(f"case '{name}': set the resolution with 'res', not in 'defines'")
    return Case(
        name=name, class_=entry["class"], scene=scene, param=entry["param"], perturbation=kind,
        vector=vector, eps=_number(name, "eps", entry["eps"], float),
        res=res if res is not None else _number(name, "res", merged.get("res", 64), int),
        fd_spp=_number(name, "fd_spp", merged.get("fd_spp", 1024), int),
        fd_seeds=_number(name, "fd_seeds", merged.get("fd_seeds", 16), int),
        fd_scheme=scheme,
        defines={k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in defines.items()},
        note=str(entry.get("note", "")))


def load_manifest(path: str | os.PathLike, res: int | None = None, fd_spp: int | None = None,
                  fd_seeds: int | None = None) -> Suite:
    """Read and check a manifest; ``res``, ``fd_spp`` and ``fd_seeds`` override
    every case's. Scene files must exist; parameter keys are checked by
    :func:`check_cases` (which loads the scenes)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PbdrError(f"manifest not found: {path}")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PbdrError(f"cannot read manifest {path}: {one_line(exc)}") from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise PbdrError(f"{path}: unknown table '{unknown[0]}' (use [defaults] and [[case]])")
    defaults = data.get("defaults", {})
    bad = sorted(set(defaults) - DEFAULT_KEYS) if isinstance(defaults, dict) else ["(not a table)"]
    if bad:
        raise PbdrError(f"{path}: unknown key '{bad[0]}' in [defaults] (known: {', '.join(sorted(DEFAULT_KEYS))})")
    entries = data.get("case", [])
    if not isinstance(entries, list) or not entries:
        raise PbdrError(f"{path}: no [[case]] tables")
    folder = os.path.dirname(os.path.abspath(path))
    cases = [parse_case(e, i, defaults, folder, res) for i, e in enumerate(entries)]
    for c in cases:
        c.fd_spp = fd_spp or c.fd_spp
        c.fd_seeds = fd_seeds or c.fd_seeds
        if c.fd_seeds < 2:
            raise PbdrError(f"case '{c.name}': fd_seeds must be >= 2 to measure noise, got {c.fd_seeds}")
    seen: set[str] = set()
    for c in cases:
        if c.name in seen:
            raise PbdrError(f"case '{c.name}': the name is used twice in {path}")
        seen.add(c.name)
    return Suite(os.path.abspath(path), cases)


def check_cases(cases: list[Case]) -> None:
    """Load every case's scene and perturbation and check its FD step: a
    PbdrError naming the first case that fails (unknown parameter key, a
    perturbation that does not apply to it, a step that leaves its domain)."""
    from ..validate import check_fd_settings

    for case in cases:
        _, p = case.load()
        try:
            check_fd_settings(p, case.eps, case.fd_seeds, min_seeds=2, scheme=case.fd_scheme)
        except PbdrError as exc:
            raise PbdrError(f"case '{case.name}': {exc}") from None
