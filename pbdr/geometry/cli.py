"""``pbdr sdf``: write SDF grids (``.vol``) for Mitsuba's ``sdfgrid`` shape.

    pbdr sdf sphere --radius R [--center X,Y,Z] -o OUT.vol [--res N] [--padding P] [--force]
    pbdr sdf box    --half-size X,Y,Z [--center X,Y,Z] -o OUT.vol [...]
    pbdr sdf torus  --major R --minor r [--center X,Y,Z] -o OUT.vol [...]
    pbdr sdf mesh   MESH.obj|ply -o OUT.vol [...]

Prints the ``<shape type="sdfgrid">`` element (with its ``to_world``) that
places the grid where the primitive was.
"""
from __future__ import annotations

import argparse
import os

from ..cli import add_command, float_triplet, positive_int, variant_arg


def register_subcommand(sub) -> None:
    p = add_command(sub, "sdf", "make an SDF grid (.vol) for an sdfgrid shape")
    kinds = p.add_subparsers(dest="sdf_kind", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("-o", "--output", required=True, help="output .vol")
        q.add_argument("--res", type=positive_int, default=32, help="grid resolution N (N^3 samples)")
        q.add_argument("--padding", type=float, default=0.25, help="margin around the shape, relative")
        q.add_argument("--center", type=float_triplet, default=(0.0, 0.0, 0.0), metavar="X,Y,Z",
                       help="centre of the primitive")
        variant_arg(q)
        q.add_argument("-f", "--force", action="store_true", help="replace an existing output")
        q.set_defaults(run=cmd_sdf)

    q = add_command(kinds, "sphere", "sphere of radius R")
    q.add_argument("--radius", type=float, required=True, help="sphere radius")
    common(q)
    q = add_command(kinds, "box", "axis-aligned box")
    q.add_argument("--half-size", type=float_triplet, required=True, metavar="X,Y,Z",
                   help="half the box's extent along each axis")
    common(q)
    q = add_command(kinds, "torus", "torus around +Y")
    q.add_argument("--major", type=float, required=True, help="ring radius")
    q.add_argument("--minor", type=float, required=True, help="tube radius")
    common(q)
    q = add_command(kinds, "mesh", "closed triangle mesh (.obj/.ply), brute force")
    q.add_argument("mesh", help="mesh file")
    common(q)


def cmd_sdf(args: argparse.Namespace) -> int:
    import pbdr
    from ..errors import PbdrError
    from . import sdf

    if not args.output.lower().endswith(".vol"):
        raise PbdrError(f"SDF output must be a .vol file, got '{args.output}'")
    if os.path.exists(args.output) and not args.force:
        raise PbdrError(f"{args.output} already exists; pass --force to replace it")
    if not (args.padding >= 0):
        raise PbdrError(f"--padding must be >= 0, got {args.padding}")
    pbdr.set_variant(args.variant)
    kw = dict(resolution=args.res, padding=args.padding)
    if args.sdf_kind == "sphere":
        grid = sdf.sphere(args.radius, args.center, **kw)
    elif args.sdf_kind == "box":
        grid = sdf.box(args.half_size, args.center, **kw)
    elif args.sdf_kind == "torus":
        grid = sdf.torus(args.major, args.minor, args.center, **kw)
    else:
        vertices, faces = sdf.load_mesh(args.mesh)
        if args.center != (0.0, 0.0, 0.0):
            raise PbdrError("--center does not apply to 'sdf mesh' (the mesh keeps its place)")
        grid = sdf.from_mesh(vertices, faces, **kw)
    sdf.write(grid, args.output, force=args.force)
    print(f"wrote {args.output} ({grid.resolution}^3 grid)")
    print(grid.xml_snippet(os.path.basename(args.output)))
    return 0
