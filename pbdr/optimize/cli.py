"""``pbdr optimize CONFIG.toml [--iterations N] [--out DIR] [--resume] [--force]``."""
from __future__ import annotations

import argparse
import os


def register_subcommand(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import add_command, variant_arg

    p = add_command(subparsers, "optimize", "inverse rendering from a TOML config")
    p.add_argument("config", help="TOML config; its paths are relative to it")
    p.add_argument("--iterations", type=int, default=None, help="override the config's iterations", metavar="N")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (overrides [output] dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("-f", "--force", action="store_true", help="replace a previous run in the folder")
    variant_arg(p)
    p.set_defaults(run=cmd_optimize)


def cmd_optimize(args: argparse.Namespace) -> int:
    import pbdr
    from .loop import optimize

    pbdr.set_variant(args.variant)
    if args.iterations is not None and args.iterations <= 0:
        raise pbdr.PbdrError(f"--iterations must be a positive integer, got {args.iterations}")
    result = optimize(args.config, iterations=args.iterations, out_dir=args.out, resume=args.resume,
                      force=args.force, progress=True)
    print(f"{len(result.losses)} iterations with {result.integrator} in {result.seconds:.1f} s, "
          f"final loss {result.losses[-1]:.4g}" if result.losses else "no iterations run")
    for key, value in result.values.items():
        shown = ", ".join(f"{v:.4g}" for v in value[:6]) + (", ..." if len(value) > 6 else "")
        print(f"  {key} = [{shown}]")
    if result.out_dir:
        print(f"wrote {shown_path(result.out_dir)} (params.json, loss.csv, loss.png, comparison.png, scene/scene.xml)")
    return 0


def shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, else as it is."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
