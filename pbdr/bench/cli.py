"""``pbdr bench list|refs|run``: the gradient benchmark suite from the command line."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import PbdrError, note

DEFAULT_SUITE = Path(__file__).resolve().parents[2] / "scenes" / "bench" / "suite.toml"
DEFAULT_OUT = "bench-report"


def register_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pbdr bench`` with its three subcommands."""
    from ..cli import HelpFormatter, add_command, positive_int, variant_arg

    bench = subparsers.add_parser(
        "bench", help="gradient benchmark: FD references, integrators scored against them",
        description="A suite of gradient cases (a TOML manifest), finite-difference references cached "
                    "per case, and any integrators scored against them: pbdr bench refs, then "
                    "pbdr bench run --integrator A,B,...", formatter_class=HelpFormatter)
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--suite", default=None, metavar="MANIFEST.toml",
                       help=f"the cases (default: the bundled suite, {DEFAULT_SUITE.name})")
        p.add_argument("--cases", default=None, metavar="A,B,...", help="run only these cases")
        p.add_argument("--res", type=positive_int, default=None, metavar="N",
                       help="override every case's resolution (N x N)")
        p.add_argument("--cache", default=None, metavar="DIR",
                       help="reference cache (default: refs-cache/<manifest name> beside the manifest)")
        variant_arg(p)

    p = add_command(sub, "list", "list the cases of a manifest")
    common(p)
    p.set_defaults(run=cmd_list)

    p = add_command(sub, "refs", "compute the finite-difference references that are missing or stale")
    common(p)
    p.add_argument("--fd-spp", type=positive_int, default=None, help="override the cases' FD spp")
    p.add_argument("--fd-seeds", type=positive_int, default=None, help="override the cases' FD seeds (>= 2)")
    p.add_argument("-f", "--force", action="store_true", help="recompute every reference")
    p.set_defaults(run=cmd_refs)

    p = add_command(sub, "run", "score integrators on every case they support; write the report")
    common(p)
    p.add_argument("--integrator", required=True, metavar="A,B,...",
                   help="integrator plugins, e.g. pbdr_edge,prb,prb_projective")
    p.add_argument("--spp", type=positive_int, default=64, help="samples per pixel of each gradient")
    p.add_argument("--seeds", type=positive_int, default=8,
                   help="gradients per integrator and case (>= 2; the verdict's block chi2 tolerance "
                        "assumes 8 or more, as pbdr check's does)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="seconds one gradient may take before the case is 'failed: timed out' "
                        "(the warm-up gradient, which compiles the kernels: 4x that)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="report folder")
    p.add_argument("-f", "--force", action="store_true", help="replace a previous report in --out")
    p.set_defaults(run=cmd_run)


def _suite(args: argparse.Namespace):
    """The manifest's selected cases, checked (scenes load, keys and steps are valid), and the cache."""
    import pbdr
    from .manifest import check_cases, load_manifest
    from .refs import default_cache

    path = args.suite or str(DEFAULT_SUITE)
    suite = load_manifest(path, res=args.res, fd_spp=getattr(args, "fd_spp", None),
                          fd_seeds=getattr(args, "fd_seeds", None))
    names = [n.strip() for n in args.cases.split(",") if n.strip()] if args.cases else None
    cases = suite.select(names)
    pbdr.set_variant(args.variant)
    check_cases(cases)
    return suite, cases, args.cache or default_cache(suite.path)


def cmd_list(args: argparse.Namespace) -> int:
    from .refs import is_current

    suite, cases, cache = _suite(args)
    for c in cases:
        state = "reference ready" if is_current(cache, c) else "no reference"
        print(f"{c.name:24s} {c.class_:12s} {c.describe():52s} {os.path.basename(c.scene)} ({state})")
    print(f"{len(cases)} cases in {suite.path}; cache {cache}")
    return 0


def cmd_refs(args: argparse.Namespace) -> int:
    from .refs import make_refs

    _, cases, cache = _suite(args)
    done = make_refs(cases, cache, force=args.force, progress=True)
    computed = sum(state == "computed" for _, state in done)
    print(f"references in {cache}: {computed} computed, {len(done) - computed} up to date")
    return 0


def check_integrators(names: list[str]) -> None:
    """Refuse an integrator name that no plugin has (before any rendering)."""
    import mitsuba as mi

    for name in names:
        try:
            mi.load_dict({"type": name})
        except Exception as exc:       # noqa: BLE001 - Mitsuba raises RuntimeError with C++ detail
            text = str(exc)
            if "not found" in text.lower() or ("unknown" in text.lower() and "plugin" in text.lower()):
                raise PbdrError(f"unknown integrator '{name}'") from None


def command_line(args: argparse.Namespace) -> str:
    """The ``pbdr bench run`` command that reproduces this run."""
    parts = ["pbdr bench run", f"--integrator {args.integrator}", f"--spp {args.spp}", f"--seeds {args.seeds}",
             f"--timeout {args.timeout:g}"]
    for flag, value in (("--suite", args.suite), ("--cases", args.cases), ("--res", args.res),
                        ("--out", args.out)):
        if value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    from ..cli import refuse_overwrite
    from ..errors import warn
    from .refs import check_versions, require_refs
    from .report import FILES, write_report
    from .run import run_bench

    names = [n.strip() for n in args.integrator.split(",") if n.strip()]
    if not names:
        raise PbdrError("--integrator needs at least one integrator name")
    if len(set(names)) != len(names):
        raise PbdrError(f"--integrator names an integrator twice: {args.integrator}")
    if args.seeds < 2:
        raise PbdrError(f"--seeds must be at least 2 to measure noise, got {args.seeds}")
    if not (args.timeout > 0):
        raise PbdrError(f"--timeout must be positive, got {args.timeout:g}")
    refuse_overwrite([os.path.join(args.out, f) for f in FILES], args.force)
    _, cases, cache = _suite(args)
    check_integrators(names)
    refs = require_refs(cases, cache)
    for ref in refs.values():
        warn(check_versions(ref.meta))
    outcomes = run_bench(cases, refs, names, args.spp, args.seeds, args.timeout, args.variant, progress=True)
    meta = {"command": command_line(args), "variant": _variant(), "spp": args.spp, "seeds": args.seeds,
            "timeout": args.timeout}
    paths = write_report(args.out, outcomes, cases, refs, names, meta)
    ok = sum(o.score.status == "ok" for o in outcomes)
    passed = sum(bool(o.score.passed) for o in outcomes)
    print(f"{len(outcomes)} runs: {passed} agree with FD, {ok - passed} disagree, "
          f"{sum(o.score.status == 'unsupported' for o in outcomes)} unsupported, "
          f"{sum(o.score.status == 'failed' for o in outcomes)} failed")
    print(f"wrote {', '.join(paths)}")
    note(f"open {os.path.join(args.out, 'index.html')} for the images")
    return 0


def _variant() -> str:
    import mitsuba as mi

    return str(mi.variant())
