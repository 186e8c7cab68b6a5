"""Writing the optimized scene back as Mitsuba XML (plus PLY meshes and .vol
grids) so the result opens in Mitsuba without pbdr.

The initial XML is edited, not regenerated: everything the optimization did
not touch stays as the author wrote it. A key ``id.a.b.value`` is followed
through the element with that id, then children named ``a``, ``b`` (or
tagged ``bsdf``/``emitter``); a ``value`` is written as the element's value.
Moved meshes become ``ply`` shapes in world space; translated transforms get
a ``<translate>`` appended; grids become ``.vol`` files.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import mitsuba as mi
import numpy as np

from ..imageio import atomic_path
from .variables import Variable

SHAPE_KEEP = {"bsdf", "ref", "emitter", "medium", "sensor"}


def find_by_id(root: ET.Element, ident: str) -> ET.Element | None:
    return next((e for e in root.iter() if e.get("id") == ident), None)


def walk(elem: ET.Element, parts: list[str]) -> ET.Element | None:
    for part in parts:
        child = next((c for c in elem if c.get("name") == part), None)
        if child is None:
            child = next((c for c in elem if c.tag == part), None)
        if child is None and part in ("interior_medium", "exterior_medium"):
            # mi.traverse's "interior_medium" is <medium name="interior"> in the XML
            child = next((c for c in elem if c.tag == "medium" and c.get("name") == part[:-7]), None)
        if child is None:
            return None
        elem = child
    return elem


def set_child(elem: ET.Element, tag: str, name: str, value: str) -> None:
    child = next((c for c in elem if c.get("name") == name), None)
    if child is None:
        child = ET.SubElement(elem, tag, name=name)
    child.tag = tag
    child.attrib = {"name": name, "value": value}


def fmt(values: np.ndarray) -> str:
    return ", ".join(f"{float(v):.7g}" for v in np.asarray(values).ravel())


def shape_by_id(scene: mi.Scene, ident: str) -> mi.Shape | None:
    return next((s for s in scene.shapes() if s.id() == ident), None)


def rebase_filenames(root: ET.Element, src_dir: str, dst_dir: str) -> None:
    """Keep relative file references (meshes, textures) valid from the new folder."""
    for e in root.iter("string"):
        if e.get("name") == "filename" and not os.path.isabs(e.get("value", "")):
            full = os.path.normpath(os.path.join(src_dir, e.get("value", "")))
            e.set("value", os.path.relpath(full, dst_dir))


def write_back(var: Variable, root: ET.Element, scene: mi.Scene, params: mi.SceneParameters,
               folder: str) -> str | None:
    """Edit the XML for one variable; return a warning when it cannot be done."""
    ident, *rest = var.key.split(".")
    elem = find_by_id(root, ident)
    if elem is None:
        return f"'{var.key}': no element with id '{ident}' in the XML"
    value = params[var.key]
    if var.key.endswith("vertex_positions"):
        shape = shape_by_id(scene, ident)
        if shape is None:
            return f"'{var.key}': no shape '{ident}'"
        rel = os.path.join("meshes", f"{ident}.ply")
        os.makedirs(os.path.join(folder, "meshes"), exist_ok=True)
        with atomic_path(os.path.join(folder, rel)) as tmp:
            shape.write_ply(tmp)
        for child in list(elem):
            if child.tag not in SHAPE_KEEP:
                elem.remove(child)
        elem.set("type", "ply")
        elem.insert(0, ET.Element("string", name="filename", value=rel))
        return None
    if var.spec.transform == "translate":      # to_world: append the offset
        target = walk(elem, rest)
        if target is None:
            return f"'{var.key}': no <transform name=\"{rest[-1]}\"> under id '{ident}'"
        x, y, z = var.numbers()
        ET.SubElement(target, "translate", x=f"{x:.7g}", y=f"{y:.7g}", z=f"{z:.7g}")
        return None
    if isinstance(value, mi.TensorXf):       # grids: write a .vol, point the XML at it
        target = walk(elem, rest[:-1]) if rest and rest[-1] in ("data", "grid") else None
        if target is None:
            return f"'{var.key}': cannot find the grid element to write back"
        rel = os.path.join("grids", var.key.replace(".", "_") + ".vol")
        os.makedirs(os.path.join(folder, "grids"), exist_ok=True)
        arr = np.array(value)
        with atomic_path(os.path.join(folder, rel)) as tmp:
            mi.VolumeGrid(arr if arr.ndim == 4 else arr[..., None]).write(tmp)
        set_child(target, "string", "filename", rel)
        return None
    if rest and rest[-1] == "value":
        rest = rest[:-1]
    target = walk(elem, rest)
    if target is None or target.tag not in ("rgb", "float", "spectrum"):
        return f"'{var.key}': no <rgb>/<float> element for it in the XML"
    numbers = np.array(value).ravel()
    target.set("value", fmt(numbers))
    return None


def export_scene(xml_path: str, scene: mi.Scene, params: mi.SceneParameters, variables: list[Variable],
                 folder: str, defines: dict[str, str]) -> tuple[str, list[str]]:
    """Write ``folder/scene.xml`` (and meshes/grids); return its path and any warnings."""
    os.makedirs(folder, exist_ok=True)
    tree = ET.parse(xml_path)
    root = tree.getroot()
    rebase_filenames(root, os.path.dirname(os.path.abspath(xml_path)), os.path.abspath(folder))
    for d in root.iter("default"):       # bake the defines the run used
        if d.get("name") in defines:
            d.set("value", defines[d.get("name")])
    warnings = [w for w in (write_back(v, root, scene, params, folder) for v in variables) if w]
    for w in warnings:
        root.insert(0, ET.Comment(f" pbdr: not written back: {w}; see params.json "))
    ET.indent(tree)
    path = os.path.join(folder, "scene.xml")
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
    return path, warnings
