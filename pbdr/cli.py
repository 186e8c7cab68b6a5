"""The ``pbdr`` command: a thin layer over the Python API.

    pbdr render SCENE.xml -o OUT.exr [--spp N] [--seed S] [--integrator T] [--max-depth D] [-D k=v]
    pbdr grad   SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] -o OUT.exr [...]
    pbdr fd     SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] --eps E -o OUT.exr [--spp N] [--seeds K]
    pbdr check  SCENE.xml --param KEY [--translate X,Y,Z | --rotate X,Y,Z] --eps E [-o SHEET.png] [...]

Bad input ends with one line on stderr and exit code 2; ``check`` exits 1
when the derivative disagrees with finite differences. Set PBDR_DEBUG=1 to
see tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

from .errors import PbdrError, one_line, warn

EXIT_USAGE = 2
EXIT_DISAGREE = 1

# Modules with a ``register_subcommand(subparsers)`` function; each adds one
# subcommand whose ``run(args) -> int`` is set with ``set_defaults(run=...)``.
EXTRA_COMMANDS = ["pbdr.optimize.cli", "pbdr.geometry.cli"]


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


def common_args(p: argparse.ArgumentParser, spp_default: int = 64) -> None:
    p.add_argument("scene", help="Mitsuba 3 XML scene file")
    p.add_argument("--spp", type=positive_int, default=spp_default, help="samples per pixel")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--integrator", default=None,
                   help="integrator type (default: the scene's; pbdr_interior for derivatives)")
    p.add_argument("--max-depth", type=int, default=None, help="override the maximum path depth")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="KEY=VALUE",
                   help="set an XML $KEY default (repeatable)")
    p.add_argument("--variant", default=None, help="Mitsuba AD variant (default llvm_ad_rgb or $PBDR_VARIANT)")
    p.add_argument("-f", "--force", action="store_true", help="replace existing output files")


def param_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", required=True, metavar="KEY", help="an mi.traverse key")
    p.add_argument("--translate", type=float_triplet, default=None, metavar="X,Y,Z",
                   help="direction for vertex positions / to_world: move by θ·(X,Y,Z)")
    p.add_argument("--rotate", type=float_triplet, default=None, metavar="X,Y,Z",
                   help="axis for vertex positions / to_world: turn by θ radians about it, "
                        "through the shape's centre")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pbdr", description="Physically based differentiable path tracer.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render an image (EXR + PNG)")
    common_args(p)
    p.add_argument("-o", "--output", required=True, help="output .exr")
    p.set_defaults(run=cmd_render)

    p = sub.add_parser("grad", help="forward-mode derivative image dI/dθ")
    common_args(p)
    param_args(p)
    p.add_argument("-o", "--output", required=True, help="output .exr")
    p.set_defaults(run=cmd_grad)

    p = sub.add_parser("fd", help="finite-difference derivative image (mean and standard error)")
    common_args(p, spp_default=256)
    param_args(p)
    p.add_argument("--eps", type=float, required=True, help="finite-difference step in θ")
    p.add_argument("--seeds", type=positive_int, default=8, help="independent seeds (>= 2 for a standard error)")
    p.add_argument("-o", "--output", required=True, help="output .exr (mean); OUT_stderr.exr beside it")
    p.set_defaults(run=cmd_fd)

    p = sub.add_parser("check", help="derivative vs finite differences: report and exit status")
    common_args(p)
    param_args(p)
    p.add_argument("--eps", type=float, required=True, help="finite-difference step in θ")
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
    """Variant, scene and integrator from the common arguments."""
    import pbdr

    pbdr.set_variant(args.variant)
    scene = pbdr.load_scene(args.scene, pbdr.parse_defines(args.defines))
    integrator = pbdr.make_integrator(scene, args.integrator, args.max_depth, differentiable)
    if differentiable:
        warn(pbdr.scene.media_warning(scene, integrator))
    return scene, integrator


def perturbation(args: argparse.Namespace, scene, integrator=None):
    import pbdr

    p = pbdr.Perturbation.of(pbdr.scene_params(scene), args.param, args.translate, args.rotate)
    warn(pbdr.scene.smooth_shading_warning(scene, [p.key], integrator))
    return p


def cmd_render(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import write_render

    out = exr_path(args.output)
    refuse_overwrite([out, sibling(out, ".png")], args.force)
    scene, integrator = setup(args, differentiable=False)
    image = pbdr.render(scene, args.spp, args.seed, integrator)
    png = write_render(out, image)
    print(f"wrote {out} and {png} ({image.shape[1]}x{image.shape[0]}, {args.spp} spp)")
    return 0


def cmd_grad(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import write_derivative

    out = exr_path(args.output)
    refuse_overwrite([out, sibling(out, ".png")], args.force)
    scene, integrator = setup(args, differentiable=True)
    p = perturbation(args, scene, integrator)
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
    scene, _ = setup(args, differentiable=False)
    p = perturbation(args, scene)
    fd = pbdr.finite_differences(scene, p, args.eps, args.spp, args.seeds, first_seed=args.seed,
                                 progress=True)
    png = write_derivative(out, fd.mean)
    write_exr(err, fd.stderr)
    print(f"finite differences of {p.describe()}, eps={args.eps:g}, {args.seeds} seeds x {args.spp} spp: "
          f"sum = {fd.total:.6g} ± {fd.total_se:.3g}")
    print(f"wrote {out}, {png} and {err}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import pbdr
    from .imageio import diverging, sheet, signed_scale, write_exr, write_png

    outputs = []
    if args.output:
        if not args.output.lower().endswith(".png"):
            raise pbdr.PbdrError(f"check output must be a .png file, got '{args.output}'")
        outputs = [args.output, sibling(args.output, "_grad.exr"), sibling(args.output, "_fd.exr")]
        refuse_overwrite(outputs, args.force)
    scene, integrator = setup(args, differentiable=True)
    p = perturbation(args, scene, integrator)
    result = pbdr.check(scene, p, args.eps, args.spp, args.fd_spp or 4 * args.spp, args.seeds,
                        integrator, z_tol=args.z_tol, progress=True)
    print(f"check: d/dθ of {p.describe()} with {type(integrator).__name__}")
    print(result.report.summary())
    if outputs:
        g, f = result.grad.mean, result.fd.mean
        scale = signed_scale(g, f)
        write_png(outputs[0], sheet([diverging(g, scale), diverging(f, scale), diverging(g - f, scale)],
                                    ["derivative", "finite differences", "difference"]))
        write_exr(outputs[1], g)
        write_exr(outputs[2], f)
        print(f"wrote {', '.join(outputs)}")
    return 0 if result.report.passed else EXIT_DISAGREE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except PbdrError as exc:
        print(f"pbdr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pbdr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if os.environ.get("PBDR_DEBUG"):
            raise
        print(f"pbdr: error: {type(exc).__name__}: {one_line(exc)} (PBDR_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
