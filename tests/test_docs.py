"""The documentation site builds without warnings, and the API it documents
has docstrings.

``mkdocs build --strict`` fails on any warning: a broken link or anchor, a
page missing from the nav, a docstring that mkdocstrings cannot render, a
module in ``docs/api.md`` that does not exist (see ``validation:`` in
mkdocs.yml). mkdocs, mkdocs-material and mkdocstrings are test dependencies
(the ``test`` extra), so a missing one fails here rather than skipping.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "api.md"

def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` exits 0 (every warning is an error)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api.html").is_file()


def api_modules() -> list[str]:
    """The modules that docs/api.md renders with ``::: module`` blocks."""
    return re.findall(r"^:::\s*([\w.]+)\s*$", API_PAGE.read_text(encoding="utf-8"), flags=re.M)


def own_docstring(obj: object) -> str | None:
    """The object's own docstring: not inherited from a base class, and not
    the signature a dataclass writes when it has none."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and doc.startswith(obj.__name__ + "("):   # dataclass-generated
            return None
    else:
        doc = getattr(obj, "__doc__", None)
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def public_names(module_name: str) -> list[tuple[str, object]]:
    """(qualified name, object) for the public functions and classes of a
    module: its ``__all__`` when it has one, else every function or class
    defined in it whose name does not start with an underscore."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                 and getattr(v, "__module__", None) == module_name]
    return [(f"{module_name}.{n}", getattr(module, n)) for n in names]


def members(cls: type) -> list[tuple[str, object]]:
    """A class's own public methods and properties (not inherited ones)."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, value))
    return out


def documented_objects() -> list:
    """pytest params: every module in api.md, every public name of each, and
    the public methods and properties of its classes."""
    params = []
    for module_name in api_modules():
        params.append(pytest.param(module_name, None, id=module_name))
        for qualname, obj in public_names(module_name):
            params.append(pytest.param(qualname, obj, id=qualname))
            if inspect.isclass(obj) and obj.__module__ == module_name:
                for name, member in members(obj):
                    params.append(pytest.param(f"{qualname}.{name}", member, id=f"{qualname}.{name}"))
    return params


def test_api_page_lists_the_public_modules() -> None:
    """The API reference covers the modules the public API lives in."""
    required = {"pbdr", "pbdr.scene", "pbdr.perturb", "pbdr.render", "pbdr.validate", "pbdr.imageio",
                "pbdr.optimize", "pbdr.optimize.config", "pbdr.optimize.loop", "pbdr.optimize.losses",
                "pbdr.optimize.regularizers", "pbdr.gradient"}
    assert required <= set(api_modules()), sorted(required - set(api_modules()))
    # Every top-level name is defined in a module the page renders.
    import pbdr

    rendered = set(api_modules())
    homes = {getattr(pbdr, n).__module__ for n in pbdr.__all__}
    assert homes <= rendered, sorted(homes - rendered)


@pytest.mark.parametrize("qualname, obj", documented_objects())
def test_public_name_has_a_docstring(qualname: str, obj: object) -> None:
    if obj is None:   # the module itself
        obj = importlib.import_module(qualname)
        assert own_docstring(obj), f"module {qualname} has no docstring"
        return
    assert inspect.isfunction(obj) or inspect.isclass(obj) or isinstance(obj, property) or callable(obj), \
        f"{qualname} is not a function, class or property"
    assert own_docstring(obj), f"{qualname} has no docstring (docs/api.md renders it)"
