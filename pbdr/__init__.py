"""pbdr: a physically based differentiable path tracer on Mitsuba 3.

Typical use::

    import pbdr
    scene = pbdr.load_scene("scenes/cbox.xml")
    image = pbdr.render(scene, spp=64)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "red.reflectance.value")
    dimage = pbdr.derivative(scene, p, spp=64)
    result = pbdr.check(scene, p, eps=0.01, spp=64, fd_spp=256)
    print(result.report.summary())
    grads = pbdr.gradient(scene, lambda image: dr.mean(image, axis=None), ["red.reflectance.value"])

Importing pbdr registers its integrators (``pbdr_interior``, ...) for the
active Mitsuba variant and for every variant set later; ``pbdr.set_variant``
picks one (default ``llvm_ad_rgb``, or ``$PBDR_VARIANT``) and makes sure
the LLVM backend finds a libLLVM it can use.
"""
from __future__ import annotations

from . import interrupts as _interrupts
_interrupts.exit_on_sigint_while_starting()  # Ctrl-C while pbdr imports Mitsuba: one line, exit 130

from importlib import metadata as _metadata  # noqa: E402

from .errors import PbdrError
from .variant import ensure_variant, prepare_libllvm, set_variant

prepare_libllvm()  # before the first ``import drjit``, which looks for libLLVM

from .scene import (auto_integrator_type, has_media, load_scene, make_integrator, parse_defines, resolve_key,
                    scene_params)
from .perturb import Perturbation
from .render import derivative, render, total_derivative
from .gradient import gradient
from .optimize import OptimizeConfig, optimize  # noqa: E402
from .validate import (CheckReport, CheckResult, Estimate, check, compare, derivative_estimate,
                       finite_differences)

from . import integrators as _integrators  # noqa: E402  (the one place that registers plugins)

try:
    __version__: str = _metadata.version("pbdr")
except _metadata.PackageNotFoundError:   # run from a source tree that was never installed
    __version__ = "unknown"

__all__ = [
    "PbdrError", "set_variant", "ensure_variant", "load_scene", "scene_params", "resolve_key",
    "make_integrator", "auto_integrator_type", "has_media", "parse_defines", "Perturbation", "render", "derivative",
    "total_derivative", "gradient", "finite_differences", "derivative_estimate", "compare", "check",
    "Estimate", "CheckReport", "CheckResult",
]
