"""The ``pbdr`` command: a thin layer over the Python API.

    pbdr render   SCENE.xml -o OUT.exr [--spp N] [--seed S] [--integrator T] [--max-depth D] [-D k=v]
    pbdr grad     SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] -o OUT.exr [...]
    pbdr fd       SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] --eps E -o OUT.exr [--seeds K]
    pbdr check    SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] --eps E [-o SHEET.png] [...]
    pbdr optimize CONFIG.toml [--out DIR] [--iterations N] [--resume]
    pbdr sdf      sphere|box|torus|mesh ... -o OUT.vol

Derivatives use ``--integrator auto`` unless told otherwise (see
:func:`pbdr.scene.auto_integrator_type`). Every command takes ``--quiet``
(no notes, no progress bars; bars are drawn only on a terminal anyway).
Bad input ends with one line on stderr and exit code 2; ``check`` exits 1
when the derivative disagrees with finite differences; Ctrl-C exits 130.
Set PBDR_DEBUG=1 to see tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

from . import interrupts
from .errors import PbdrError, note, one_line, set_quiet, stderr_line, warn

EXIT_USAGE = 2
EXIT_DISAGREE = 1

# Modules with a ``register_subcommand(subparsers)`` function; each adds one
# subcommand whose ``run(args) -> int`` is set with ``set_defaults(run=...)``.
EXTRA_COMMANDS = ["pbdr.optimize.cli", "pbdr.geometry.cli", "pbdr.geometry.grid_cli", "pbdr.bench.cli"]


def float_triplet(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z numbers, got '{text}'") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z, got '{text}'")
    return values  # type: ignore[return-value]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, where it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == []
                or default is argparse.SUPPRESS or not action.option_strings or action.nargs == 0):
            return text
        return f"{text} (default: {default})"


def add_command(sub: argparse._SubParsersAction, name: str, help: str,
                description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser with pbdr's help format and the options every command takes."""
    p = sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)
    p.add_argument("-q", "--quiet", action="store_true", help="no notes and no progress bars")
    return p


def variant_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default=None,
                   help="Mitsuba AD variant (default: $PBDR_VARIANT, else llvm_ad_rgb)")


def common_args(p: argparse.ArgumentParser, spp_default: int = 64, integrator_default: str | None = "auto") -> None:
    p.add_argument("scene", help="Mitsuba 3 XML scene file")
    p.add_argument("--spp", type=positive_int, default=spp_default, help="samples per pixel")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    if integrator_default == "auto":
        p.add_argument("--integrator", default="auto",
                       help="integrator plugin; 'auto' picks by the parameter: pbdr_volume with media, "
                            "pbdr_reparam for SDF grids, pbdr_edge for moving meshes and emitters, else "
                            "pbdr_interior (a differentiable integrator named in the scene is kept)")
    else:
        p.add_argument("--integrator", default=None,
                       help="integrator plugin (default: the scene's)")
    p.add_argument("--max-depth", type=int, default=None, help="override the maximum path depth")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="KEY=VALUE",
                   help="set an XML $KEY default (repeatable)")
    variant_arg(p)
    p.add_argument("-f", "--force", action="store_true", help="replace existing output files")


def param_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", required=True, metavar="KEY", help="an mi.traverse key")
    p.add_argument("--translate", type=float_triplet, default=None, metavar="X,Y,Z",
                   help="direction for vertex positions / to_world: move by θ·(X,Y,Z)")
    p.add_argument("--rotate", type=float_triplet, default=None, metavar="X,Y,Z",
                   help="axis for vertex positions / to_world: turn by θ radians about it, "
                        "through the shape's centre")


def version_text() -> str:
    """``pbdr X (mitsuba Y, drjit Z)``, from the installed packages' metadata."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"pbdr {of('pbdr')} (mitsuba {of('mitsuba')}, drjit {of('drjit')})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pbdr", description="Physically based differentiable path tracer.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(sub, "render", "render an image (EXR + PNG)")
    common_args(p, integrator_default=None)
    p.add_argument("-o", "--output", required=True, help="output .exr")
    p.set_defaults(run=cmd_render)

    p = add_command(sub, "grad", "forward-mode derivative image dI/dθ")
    common_args(p)
    param_args(p)
    p.add_argument("-o", "--output", required=True, help="output .exr")
    p.set_defaults(run=cmd_grad)

    p = add_command(sub, "fd", "finite-difference derivative image (mean and standard error)")
    common_args(p, spp_default=256, integrator_default=None)
    param_args(p)
    p.add_argument("--eps", type=float, required=True, help="finite-difference step in θ")
    p.add_argument("--fd-scheme", choices=("central", "forward"), default="central",
                   help="finite differences: central, or forward (second order, never below θ = 0: "
                        "for parameters at the edge of their domain, e.g. empty voxels)")
    p.add_argument("--seeds", type=positive_int, default=8, help="independent seeds (>= 2 for a standard error)")
    p.add_argument("-o", "--output", required=True, help="output .exr (mean); OUT_stderr.exr beside it")
    p.set_defaults(run=cmd_fd)

    p = add_command(sub, "check", "derivative vs finite differences: report and exit status")
    common_args(p)
    param_args(p)
    p.add_argument("--eps", type=float, required=True, help="finite-difference step in θ")
    p.add_argument("--fd-scheme", choices=("central", "forward"), default="central",
                   help="finite differences: central, or forward (second order, never below θ = 0: "
                        "for parameters at the edge of their domain, e.g. empty voxels)")
    p.add_argument("--fd-spp", type=positive_int, default=None, help="spp of the FD renders (default: 4x --spp)")
    p.add_argument("--seeds", type=positive_int, default=8, help="seeds for both estimates (>= 2)")
    p.add_argument("--z-tol", type=float, default=4.0, help="largest accepted |z| of the totals")
    p.add_argument("-o", "--output", default=None, help="side-by-side PNG (and EXRs beside it)")
    p.set_defaults(run=cmd_check)

    # Subcommands that live beside their own modules register themselves here.
    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register_subcommand(sub)
    return parser


def refuse_overwrite(paths: Sequence[str], force: bool) -> None:
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not force:
        raise PbdrError(f"{existing[0]} already exists; pass --force to replace it")


def exr_path(path: str) -> str:
    if not path.lower().endswith(".exr"):
        raise PbdrError(f"output must be an .exr file, got '{path}'")
    return path


def sibling(path: str, suffix: str) -> str:
    return os.path.splitext(path)[0] + suffix


def setup(args: argparse.Namespace, differentiable: bool):
    """Variant, scene, integrator and (for grad/fd/check) the perturbation from
    the common arguments; says which integrator ``auto`` chose, and warns where
    the integrator will miss part of the derivative."""
    import pbdr
    from .scene import (boundary_warning, integrator_name, make_integrator_why, media_warning, sdf_warning,
                        smooth_shading_warning)
    from .validate import check_fd_settings

    pbdr.set_variant(args.variant)
    scene = pbdr.load_scene(args.scene, pbdr.parse_defines(args.defines))
    p = None
    if getattr(args, "param", None) is not None:
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), args.param, args.translate, args.rotate)
        if getattr(args, "eps", None) is not None:    # fd, check: refuse bad settings before any note
            check_fd_settings(p, args.eps, args.seeds, min_seeds=2 if args.command == "check" else 1,
                              scheme=args.fd_scheme)
    keys = [p.key] if p is not None else []
    integrator, why = make_integrator_why(scene, args.integrator, args.max_depth, differentiable, keys=keys)
    if why:
        note(f"integrator {integrator_name(integrator)} (auto: {why})")
    if differentiable:
        warn(media_warning(scene, integrator))
        warn(boundary_warning(keys, integrator))
        warn(sdf_warning(scene, keys, integrator))
        warn(smooth_shading_warning(scene, keys, integrator))
    return scene, integrator, p


def cmd_render(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import write_render

    out = exr_path(args.output)
    refuse_overwrite([out, sibling(out, ".png")], args.force)
    scene, integrator, _ = setup(args, differentiable=False)
    image = pbdr.render(scene, args.spp, args.seed, integrator)
    png = write_render(out, image)
    print(f"wrote {out} and {png} ({image.shape[1]}x{image.shape[0]}, {args.spp} spp)")
    return 0


def cmd_grad(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import write_derivative

    out = exr_path(args.output)
    refuse_overwrite([out, sibling(out, ".png")], args.force)
    scene, integrator, p = setup(args, differentiable=True)
    image = pbdr.derivative(scene, p, args.spp, args.seed, integrator)
    png = write_derivative(out, image)
    print(f"d/dθ of {p.describe()}: sum = {image.sum(dtype='float64'):.6g}")
    print(f"wrote {out} and {png}")
    return 0


def cmd_fd(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import write_derivative, write_exr

    out = exr_path(args.output)
    err = sibling(out, "_stderr.exr")
    refuse_overwrite([out, sibling(out, ".png"), err], args.force)
    scene, _, p = setup(args, differentiable=False)
    fd = pbdr.finite_differences(scene, p, args.eps, args.spp, args.seeds, first_seed=args.seed,
                                 progress=True, scheme=args.fd_scheme)
    png = write_derivative(out, fd.mean)
    write_exr(err, fd.stderr)
    scheme = "" if args.fd_scheme == "central" else f" ({args.fd_scheme})"
    print(f"finite differences{scheme} of {p.describe()}, eps={args.eps:g}, {args.seeds} seeds x {args.spp} spp: "
          f"sum = {fd.total:.6g} ± {fd.total_se:.3g}")
    print(f"wrote {out}, {png} and {err}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import pbdr
    from .scene import integrator_name
    from .imageio import diverging, sheet, signed_scale, write_exr, write_png

    outputs = []
    if args.output:
        if not args.output.lower().endswith(".png"):
            raise pbdr.PbdrError(f"check output must be a .png file, got '{args.output}'")
        outputs = [args.output, sibling(args.output, "_grad.exr"), sibling(args.output, "_fd.exr")]
        refuse_overwrite(outputs, args.force)
    scene, integrator, p = setup(args, differentiable=True)
    result = pbdr.check(scene, p, args.eps, args.spp, args.fd_spp or 4 * args.spp, args.seeds,
                        integrator, z_tol=args.z_tol, progress=True, fd_scheme=args.fd_scheme)
    print(f"check: d/dθ of {p.describe()} with {integrator_name(integrator)}")
    print(result.report.summary())
    if outputs:
        g, f = result.grad.mean, result.fd.mean
        scale = signed_scale(g, f)
        write_png(outputs[0], sheet([diverging(g, scale), diverging(f, scale), diverging(g - f, scale)],
                                    ["derivative", "finite differences", "difference"], scale))
        write_exr(outputs[1], g)
        write_exr(outputs[2], f)
        print(f"wrote {', '.join(outputs)}")
    return 0 if result.report.passed else EXIT_DISAGREE


def main(argv: Sequence[str] | None = None) -> int:
    with interrupts.sigint_recorded():
        try:
            args = build_parser().parse_args(argv)
            run: Callable[[argparse.Namespace], int] = args.run
            set_quiet(args.quiet)
            code = run(args)
            interrupts.raise_if_interrupted()  # Ctrl-C whose KeyboardInterrupt something swallowed
            return code
        except BaseException as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
            # After Ctrl-C, any exception is Ctrl-C's: Dr.Jit hands a KeyboardInterrupt raised in
            # its callbacks (dr.while_loop, dr.if_stmt, dr.custom) back as a RuntimeError.
            if interrupts.interrupted() or isinstance(exc, KeyboardInterrupt):
                return interrupts.report()
            if isinstance(exc, PbdrError):
                stderr_line(f"pbdr: error: {exc}")
                return EXIT_USAGE
            if not isinstance(exc, Exception) or os.environ.get("PBDR_DEBUG"):
                raise  # SystemExit from argparse (--help, bad usage), or PBDR_DEBUG's traceback
            stderr_line(f"pbdr: error: {type(exc).__name__}: {one_line(exc)} (PBDR_DEBUG=1 shows the traceback)")
            return EXIT_USAGE


def command() -> None:
    """The ``pbdr`` command: :func:`main` on ``sys.argv``, then exit with its
    code (after Ctrl-C at once: ``interrupts.end_command``)."""
    interrupts.end_command(main())


if __name__ == "__main__":
    command()
