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

# Public names that still lack a docstring, in files being edited elsewhere
# at the time of writing. They are expected failures (not skipped), so the
# summary lists them (XPASS once a docstring lands; then drop them here).
PENDING: set[str] = {
    "pbdr.scene.scene_params",
    "pbdr.render.check_spp",
    "pbdr.render.to_numpy",
    "pbdr.render.seeds_for",
    "pbdr.validate.CheckResult",
    "pbdr.imageio.as_hwc",
    "pbdr.imageio.write_png",
    "pbdr.imageio.channel_mean",
    "pbdr.optimize.loop.OptimizeResult",
    "pbdr.optimize.loop.film_shape",
    "pbdr.optimize.loop.write_losses",
    "pbdr.optimize.loop.write_json",
}


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


def documented_objects() -> list:
    """pytest params: every module in api.md, and every public name of each."""
    params = []
    for module_name in api_modules():
        params.append(pytest.param(module_name, None, id=module_name))
        for qualname, obj in public_names(module_name):
            home = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            marks = [pytest.mark.xfail(reason="docstring pending in a file edited elsewhere", strict=False)] \
                if home in PENDING else []
            params.append(pytest.param(qualname, obj, id=qualname, marks=marks))
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
    assert inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj), \
        f"{qualname} is not a function or class"
    assert own_docstring(obj), f"{qualname} has no docstring (docs/api.md renders it)"
