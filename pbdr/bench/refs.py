"""Finite-difference references of the benchmark cases, cached on disk.

Each case's reference is ``pbdr.finite_differences`` with Mitsuba's
``path`` (``volpath`` for scenes with media) and common random numbers over
``fd_seeds`` seeds, stored in ``CACHE/<case>/`` as ``fd.npz`` (the K
per-seed derivative images) and ``ref.json`` (the manifest of the
reference: Mitsuba and Dr.Jit versions, eps, spp, seeds, scheme, the
integrator, the hash of the scene files and the case definition, seconds).
A reference is recomputed only when that hash changes (or with ``force``);
each case is written, atomically, as soon as it is done, so an interrupted
``pbdr bench refs`` resumes at the first case it had not finished.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import PbdrError, note, show_progress
from ..imageio import atomic_path
from .manifest import Case

FD_FILE = "fd.npz"
META_FILE = "ref.json"


def versions() -> dict[str, str]:
    """The installed Mitsuba and Dr.Jit versions."""
    import drjit
    import mitsuba

    return {"mitsuba": mitsuba.__version__, "drjit": drjit.__version__}


@dataclass
class Reference:
    """A case's cached FD reference: the estimate and its manifest."""

    fd: Any                 # pbdr.Estimate
    meta: dict[str, Any]


def case_folder(cache: str, case: Case) -> str:
    """``CACHE/<case name>``."""
    return os.path.join(cache, case.name)


def read_meta(cache: str, case: Case) -> dict[str, Any] | None:
    """The case's ``ref.json``, or None when absent or unreadable."""
    path = os.path.join(case_folder(cache, case), META_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_current(cache: str, case: Case, same_samples: bool = False) -> bool:
    """Whether the cache holds a reference for the case as it is now (same
    hash of its files and definition; with ``same_samples`` also the same FD
    spp and seeds)."""
    meta = read_meta(cache, case)
    if meta is None or meta.get("hash") != case.fingerprint():
        return False
    if same_samples and (meta.get("spp"), meta.get("seeds")) != (case.fd_spp, case.fd_seeds):
        return False
    return os.path.isfile(os.path.join(case_folder(cache, case), FD_FILE))


def load_reference(cache: str, case: Case) -> Reference:
    """The case's current reference; a PbdrError naming the case when it is
    missing or stale (its scene files or definition changed since)."""
    from ..validate import Estimate

    if not is_current(cache, case):
        state = "stale (its scene files or definition changed)" if read_meta(cache, case) else "missing"
        raise PbdrError(f"case '{case.name}': the finite-difference reference in {cache} is {state}; "
                        "run pbdr bench refs first")
    try:
        with np.load(os.path.join(case_folder(cache, case), FD_FILE)) as data:
            samples = data["samples"]
    except (OSError, KeyError, ValueError) as exc:
        raise PbdrError(f"case '{case.name}': cannot read its reference: {exc}") from None
    return Reference(Estimate(samples), read_meta(cache, case) or {})


def compute_reference(case: Case, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """Render the case's finite differences; return the estimate and its manifest."""
    from ..scene import renders_media
    from ..validate import fd_integrator, finite_differences

    fingerprint = case.fingerprint()       # of the files as they were when the renders started
    scene, p = case.load()
    integrator = fd_integrator(scene)
    start = time.perf_counter()
    fd = finite_differences(scene, p, case.eps, case.fd_spp, case.fd_seeds, integrator,
                            progress=progress, scheme=case.fd_scheme)
    seconds = time.perf_counter() - start
    meta = {
        "case": case.name, "hash": fingerprint, **versions(),
        "eps": case.eps, "spp": case.fd_spp, "seeds": case.fd_seeds, "first_seed": 0,
        "scheme": case.fd_scheme, "integrator": "volpath" if renders_media(integrator) else "path", "res": case.res,
        "perturbation": p.describe(), "files": [os.path.basename(f) for f in case.files()],
        "definition": case.definition(), "seconds": round(seconds, 2),
        "total": fd.total, "total_se": fd.total_se,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return fd, meta


def store_reference(cache: str, case: Case, fd: Any, meta: dict[str, Any]) -> None:
    """Write ``fd.npz`` then ``ref.json``, each atomically: a reference counts
    only once its manifest (written last) names the images' hash."""
    folder = case_folder(cache, case)
    os.makedirs(folder, exist_ok=True)
    meta_path = os.path.join(folder, META_FILE)
    if os.path.exists(meta_path):
        os.remove(meta_path)            # the old manifest must not vouch for the new images
    with atomic_path(os.path.join(folder, FD_FILE)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, samples=fd.samples.astype(np.float32))
    with atomic_path(meta_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")


def make_refs(cases: list[Case], cache: str, force: bool = False,
              progress: bool = True) -> list[tuple[Case, str]]:
    """Compute the references that are missing, stale or made with other FD
    spp/seeds than the cases ask for (all with ``force``);
    return ``(case, "computed" | "up to date")`` per case."""
    from tqdm import tqdm

    out = []
    todo = [c for c in cases if force or not is_current(cache, c, same_samples=True)]
    for case in cases:
        if case not in todo:
            out.append((case, "up to date"))
    bar = tqdm(todo, desc="references", unit="case", disable=not show_progress(progress))
    for case in bar:
        bar.set_postfix_str(case.name)
        fd, meta = compute_reference(case, progress=progress)
        store_reference(cache, case, fd, meta)
        note(f"{case.name}: FD total {fd.total:+.5g} ± {fd.total_se:.3g} ({meta['seconds']:.1f} s, "
             f"{case.fd_seeds} seeds x {case.fd_spp} spp)")
        out.append((case, "computed"))
    order = {c.name: i for i, c in enumerate(cases)}
    return sorted(out, key=lambda cs: order[cs[0].name])


def check_versions(meta: dict[str, Any]) -> str | None:
    """A warning when a reference was computed with other Mitsuba/Dr.Jit versions."""
    now = versions()
    old = {k: meta.get(k) for k in now}
    if old != now:
        return (f"case '{meta.get('case')}': reference made with mitsuba {old['mitsuba']}, drjit {old['drjit']} "
                f"(now {now['mitsuba']}, {now['drjit']}); pbdr bench refs --force recomputes it")
    return None


def default_cache(manifest: str) -> str:
    """``refs-cache/<manifest name>`` beside the manifest."""
    stem = os.path.splitext(os.path.basename(manifest))[0]
    return os.path.join(os.path.dirname(os.path.abspath(manifest)), "refs-cache", stem)


def require_refs(cases: list[Case], cache: str) -> dict[str, Reference]:
    """Every case's current reference, or a PbdrError naming the first missing or stale one."""
    if not os.path.isdir(cache):
        raise PbdrError(f"no reference cache at {cache}; run pbdr bench refs first")
    return {c.name: load_reference(cache, c) for c in cases}
