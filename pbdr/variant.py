"""Choosing the Mitsuba variant and finding a libLLVM that Dr.Jit can use.

Dr.Jit 1.5's LLVM backend needs libLLVM >= 17: version 14 is refused, and
15/16 abort the whole process ("Cannot select: fminimum") instead of raising.
So we look for a suitable library ourselves, point Dr.Jit at it through
``DRJIT_LIBLLVM_PATH`` *before* the backend starts, and otherwise fail with a
one-line message that says how to install one.
"""
from __future__ import annotations

import glob
import os
import re
import sys
from contextlib import contextmanager
from typing import Iterator

from .errors import PbdrError, one_line

DEFAULT_VARIANT = "llvm_ad_rgb"
MIN_LLVM_MAJOR = 17
LLVM_FIX = "install it with 'apt-get install libllvm19' or set DRJIT_LIBLLVM_PATH"

_LIB_DIRS = ["/usr/lib/*-linux-gnu", "/usr/lib/llvm-*/lib", "/usr/lib", "/usr/lib64",
             "/usr/local/lib", "/opt/homebrew/opt/llvm/lib", "/usr/local/opt/llvm/lib"]


def llvm_major(path: str) -> int | None:
    """Major version from a libLLVM file name (libLLVM-19.so, libLLVM.so.19.1, ...)."""
    name = os.path.basename(path)
    m = re.match(r"libLLVM(?:-(\d+)|\.so\.(\d+)|\.(\d+)\.dylib)", name)
    if m is None:
        m = re.search(r"llvm-(\d+)", path)
        return int(m.group(1)) if m else None
    return int(next(g for g in m.groups() if g))


def find_libllvm() -> str | None:
    """Path of the newest libLLVM >= 17 on this machine, or None."""
    found: list[tuple[int, str]] = []
    for d in _LIB_DIRS:
        for path in glob.glob(os.path.join(d, "libLLVM*")):
            major = llvm_major(path)
            if major is not None and major >= MIN_LLVM_MAJOR and os.path.isfile(path):
                found.append((major, path))
    return max(found)[1] if found else None


def ensure_libllvm() -> str:
    """Make sure Dr.Jit will load a suitable libLLVM; return its path."""
    user = os.environ.get("DRJIT_LIBLLVM_PATH")
    if user:
        if not os.path.isfile(user):
            raise PbdrError(f"DRJIT_LIBLLVM_PATH={user} does not exist; {LLVM_FIX}")
        major = llvm_major(user)
        if major is not None and major < MIN_LLVM_MAJOR:
            raise PbdrError(f"DRJIT_LIBLLVM_PATH={user} is LLVM {major}, but Dr.Jit "
                            f"needs LLVM >= {MIN_LLVM_MAJOR}; {LLVM_FIX}")
        return user
    path = find_libllvm()
    if path is None:
        raise PbdrError(f"no libLLVM >= {MIN_LLVM_MAJOR} found for the LLVM backend; {LLVM_FIX}, "
                        "or use a CUDA variant (--variant cuda_ad_rgb)")
    os.environ["DRJIT_LIBLLVM_PATH"] = path
    return path


_NO_LLVM = "/nonexistent/pbdr-found-no-libLLVM-17-or-newer.so"
_llvm_problem: str | None = None   # why the LLVM backend cannot start, found at import


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (Dr.Jit prints its own failed library search)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def prepare_libllvm() -> None:
    """Run before the first ``import drjit``: Dr.Jit looks for libLLVM then.

    Point ``DRJIT_LIBLLVM_PATH`` at the newest libLLVM >= 17 (or check the
    user's setting). Without one, keep Dr.Jit's LLVM backend off, so it never
    loads LLVM 15/16 and aborts later; ``set_variant`` then explains. Never
    raises: importing pbdr must work on CUDA-only machines.
    """
    global _llvm_problem
    try:
        ensure_libllvm()
    except PbdrError as exc:
        _llvm_problem = str(exc)
        os.environ["DRJIT_LIBLLVM_PATH"] = _NO_LLVM
        with quiet_stderr():
            import drjit  # noqa: F401


def set_variant(name: str | None = None) -> str:
    """Activate an AD variant: ``name``, else ``$PBDR_VARIANT``, else llvm_ad_rgb.

    Returns the variant's name. pbdr's integrators are registered for it by
    the variant callback that ``import pbdr.integrators`` installs.
    """
    name = name or os.environ.get("PBDR_VARIANT") or DEFAULT_VARIANT
    import mitsuba as mi

    if mi.variant() == name:
        return name
    ad_variants = [v for v in mi.variants() if "_ad_" in v]
    if name not in ad_variants:
        raise PbdrError(f"variant '{name}' is not an available autodiff variant; "
                        f"choose one of: {', '.join(ad_variants)}")
    if name.startswith("llvm") and _llvm_problem:
        raise PbdrError(_llvm_problem)
    try:
        mi.set_variant(name)
    except (ImportError, RuntimeError, AttributeError) as exc:
        raise PbdrError(f"cannot start variant '{name}': {one_line(exc)}") from None
    return name


def ensure_variant() -> str:
    """The active variant, setting the default one if none is active yet."""
    import mitsuba as mi

    current = mi.variant()
    if current is None:
        return set_variant()
    if "_ad_" not in current:
        raise PbdrError(f"the active Mitsuba variant '{current}' has no autodiff; "
                        "call pbdr.set_variant('llvm_ad_rgb') first")
    return current
