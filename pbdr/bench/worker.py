"""One integrator on one case, in its own process (``python -m pbdr.bench.worker JOB.json``).

``pbdr bench run`` starts one worker per integrator and case, so that a
crash or a hang (a kernel that never returns) costs that result and
nothing else: the parent kills a worker past its time limit and records
"failed: timed out". The worker decides whether the integrator supports
the case (:func:`unsupported_reason`), renders one warm-up gradient (JIT
compilation, guiding structures; it may take ``WARMUP_FACTOR`` times the
per-gradient limit) and then ``seeds`` timed ones, and writes
``result.json`` (status, reason, seconds) and ``result.npz`` (the per-seed
derivative images, or the per-seed totals of a reverse-only integrator).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

from .manifest import Case

# Integrators with reverse mode only (Mitsuba's prbvolpath: no forward mode, Mitsuba issue #1246):
# scored on the total d(Σ I)/dθ, one backward pass per seed.
REVERSE_ONLY = {"prbvolpath"}
WARMUP_SEED = 999_999
# The warm-up gradient compiles the kernels (and builds guiding structures): it may take this many
# times the per-gradient limit.
WARMUP_FACTOR = 4
FIRST_SEED = 1000                       # the references use seeds 0, 1, ...


def scene_max_depth(scene: Any) -> int | None:
    """The ``max_depth`` of the scene's own integrator (what the reference renders)."""
    from ..scene import integrator_setting

    return integrator_setting(scene.integrator(), "max_depth")


def unsupported_reason(scene: Any, case: Case, name: str, integrator: Any) -> str | None:
    """Why ``integrator`` (plugin ``name``) cannot estimate the case's derivative
    at all, in one line, or None when it can. Estimators that run but miss a
    part of the derivative (no boundary terms for a moving edge) are not
    unsupported: their bias is a result (:func:`expected_bias`)."""
    import mitsuba as mi

    from ..scene import has_media, is_sdf_key, renders_media

    box = all(s.film().rfilter().is_box_filter() for s in scene.sensors())
    projective = isinstance(integrator, mi.ad.integrators.common.PSIntegrator)
    if has_media(scene) and not renders_media(integrator):
        return "renders no participating media (the scene has some)"
    if projective and not box:
        return "projective sampling needs a box pixel filter; the case uses another"
    if projective and is_sdf_key(scene, case.param):
        return "projective sampling has no silhouettes for sdfgrid shapes"
    if getattr(integrator, "warps_directions", False) and box:
        return "needs a smooth pixel filter (reparameterization); the case uses a box filter"
    if "DirectProjective" in type(integrator).__name__:
        depth = scene_max_depth(scene)
        if depth != 2:
            return f"direct illumination only; the case's reference has max_depth {depth}"
    return None


def expected_bias(scene: Any, case: Case, integrator: Any) -> str:
    """What the integrator is known to leave out of this case's derivative ("" if nothing)."""
    from ..scene import boundary_warning, sdf_warning, smooth_shading_warning

    if boundary_warning([case.param], integrator):
        return "no boundary terms: misses moving silhouettes and shadows"
    if sdf_warning(scene, [case.param], integrator):
        return "no boundary terms for sdfgrid shapes"
    if smooth_shading_warning(scene, [case.param], integrator):
        return "does not sample shading terminators"
    return ""


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Do what ``job`` asks (see :func:`main`); return the result manifest and
    write the estimates to ``job['out'] + '.npz'``."""
    import pbdr
    from ..errors import PbdrError, one_line, set_quiet
    from ..render import derivative, total_derivative
    from ..scene import make_integrator

    set_quiet(True)
    pbdr.set_variant(job.get("variant"))
    case = Case(**{**job["case"], "vector": tuple(job["case"]["vector"]) if job["case"]["vector"] else None})
    name, spp, seeds, timeout = job["integrator"], job["spp"], job["seeds"], job["timeout"]
    scene, p = case.load()
    try:
        integrator = make_integrator(scene, name)
    except PbdrError as exc:
        return {"status": "failed", "reason": one_line(exc)}
    reason = unsupported_reason(scene, case, name, integrator)
    if reason:
        return {"status": "unsupported", "reason": reason}
    mode = "reverse" if name in REVERSE_ONLY else "forward"

    def gradient(seed: int) -> tuple[Any, float]:
        start = time.perf_counter()
        if mode == "forward":
            value = derivative(scene, p, spp, seed, integrator)
        else:
            value = total_derivative(scene, p, spp, seed, integrator)
        return value, time.perf_counter() - start

    warmup = gradient(WARMUP_SEED)[1]
    if warmup > WARMUP_FACTOR * timeout:
        return {"status": "failed", "reason": f"timed out: the warm-up gradient took {warmup:.0f} s "
                                              f"(limit {WARMUP_FACTOR * timeout:g} s with compilation)"}
    values, times = [], []
    for seed in range(FIRST_SEED, FIRST_SEED + seeds):
        value, seconds = gradient(seed)
        if seconds > timeout:
            return {"status": "failed", "reason": f"timed out: a gradient took {seconds:.0f} s "
                                                  f"(limit {timeout:g} s per gradient)"}
        values.append(value)
        times.append(seconds)
    arrays = {"samples": np.stack(values)} if mode == "forward" else {"totals": np.asarray(values)}
    with open(job["out"] + ".npz", "wb") as f:
        np.savez(f, times=np.asarray(times), **arrays)
    return {"status": "ok", "mode": mode, "warmup": warmup, "times": times,
            "warning": expected_bias(scene, case, integrator)}


def main(argv: list[str] | None = None) -> int:
    """Read the job (JSON: ``case`` (a :class:`Case` as a dict), ``integrator``,
    ``spp``, ``seeds``, ``timeout`` (seconds per gradient), ``variant``,
    ``out``), run it, write ``out + '.json'``. Errors are results too:
    ``{"status": "failed", "reason": ...}``."""
    from ..errors import PbdrError, one_line

    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    try:
        result = run_job(job)
    except PbdrError as exc:
        result = {"status": "failed", "reason": one_line(exc)}
    except Exception as exc:       # noqa: BLE001 - any failure of the integrator is a result
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {one_line(exc)}"}
    tmp = job["out"] + ".json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, job["out"] + ".json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
